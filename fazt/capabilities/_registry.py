"""The registry of capability providers, and each app's grant.

An app's grant is what its manifest requests, minus what the operator's policy withholds,
with quotas capped by the policy and the server's limits. The worker builds the handler's
frozen ``caps`` from ``worker_caps(grant)``; every call it makes comes back through
``host_for(grant, user)``, which checks the grant again (a worker loaded before a policy
change must not keep a withheld capability).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fazt.budget import Budget
from fazt.capabilities._manifest import (
    CapabilityRequest,
    EnvRequest,
    NetRequest,
    Requested,
    StorageRequest,
)
from fazt.capabilities._settings import NO_POLICY, AppSettings, Policy
from fazt.errors import CapabilityError, CapabilityNotGranted

MB = 1024 * 1024
_EXAMPLE = {"net": '{"allow": ["api.example.com"]}', "env": '["NAME"]'}
"""What a refusal suggests adding, for capabilities whose entry cannot be {}."""


@dataclass(frozen=True, kw_only=True)
class Call:
    """What a capability method is given besides its arguments."""

    app: str
    budget: Budget
    user: str | None = None       # the signed-in user, for the per-user scopes (kv.user ...)
    quota_bytes: int | None = None
    requested: CapabilityRequest | None = None   # the manifest's entry for this capability
    request_id: str | None = None
    # Per-request state a provider keeps between calls (net: the calls made so far); the
    # same dict for every call of one request.
    local: dict[str, Any] = field(default_factory=dict)


Method = Callable[[Call, list[Any]], Awaitable[Any]]
"""``await method(call, args)`` -> a JSON-able result (or RawJson)."""


class RawJson(bytes):
    """A result that is already JSON text (a stored value): sent to the worker as is."""


@dataclass(frozen=True)
class Binary:
    """A result with bytes (a blob): ``value`` (JSON-able) reaches JS with ``data`` as its
    ``data`` field, a Uint8Array, without passing through JSON or base64."""

    value: Mapping[str, Any]
    data: bytes


@dataclass(frozen=True, kw_only=True)
class Provider:
    """A capability's methods by the name JS calls them (``user.get`` is ``kv.user.get``)."""

    name: str
    methods: Mapping[str, Method]


@dataclass(frozen=True, kw_only=True)
class GrantLimits:
    quota_mb_default: int = 100     # a storage capability whose manifest names no quota
    quota_mb_max: int = 1024        # the most a manifest may get


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What one app may use: capability -> quota in bytes (None: no quota applies)."""

    app: str
    capabilities: Mapping[str, int | None]
    env: Mapping[str, str] = field(default_factory=dict)   # granted names that are set
    requested: Requested | None = None
    policy: Policy = NO_POLICY

    def to_json(self) -> dict[str, Any]:
        granted: dict[str, Any] = {}
        for name, quota in sorted(self.capabilities.items()):
            if name == "env":
                request = self.requested.get("env") if self.requested else None
                granted[name] = [] if not isinstance(request, EnvRequest) else \
                    "*" if request.every else list(request.names)
            elif name == "net" and self.requested and "net" in self.requested:
                granted[name] = self.requested.items["net"].to_json()   # type: ignore[union-attr]
            else:
                granted[name] = {} if quota is None else {"quota_mb": quota // MB}
        requested = self.requested
        return {
            "requested": None if requested is None else requested.to_json(),
            "granted": granted,
            "withheld": sorted(set(requested.items) & self.policy.withheld) if requested
            else [],
            "policy": self.policy.to_json(),
        }


class Capabilities:
    """Dispatches capability calls from JS workers to providers, for what the grant allows.

    ``grant_all`` names providers every app gets whatever its manifest says (a seam for tests).
    """

    def __init__(self, providers: Iterable[Provider] = (), *, settings: AppSettings | None = None,
                 limits: GrantLimits | None = None, grant_all: Iterable[str] = ()) -> None:
        self._providers = {p.name: p for p in providers}
        self._settings = settings
        self._limits = limits or GrantLimits()
        self._grant_all = frozenset(grant_all)
        unknown = self._grant_all - set(self._providers)
        if unknown:
            raise ValueError(f"grant_all names unknown providers: {sorted(unknown)}")

    @property
    def settings(self) -> AppSettings | None:
        return self._settings

    def grant(self, app: str, requested: Requested | None) -> Grant:
        """The app's effective grant now (from memory: cheap enough for every request)."""
        policy = self._settings.policy(app) if self._settings is not None else NO_POLICY
        capabilities: dict[str, int | None] = {name: None for name in self._grant_all}
        env: dict[str, str] = {}
        for name, request in (requested.items.items() if requested is not None else ()):
            if name in policy.withheld:
                continue
            if isinstance(request, StorageRequest):
                mb = min(request.quota_mb or self._limits.quota_mb_default,
                         self._limits.quota_mb_max,
                         policy.quota_mb.get(name, self._limits.quota_mb_max))
                capabilities[name] = mb * MB
            elif isinstance(request, NetRequest):
                capabilities[name] = None
            elif isinstance(request, EnvRequest):
                capabilities[name] = None
                values = self._settings.env(app) if self._settings is not None else {}
                env = dict(values) if request.every else \
                    {n: values[n] for n in request.names if n in values}
        return Grant(app=app, capabilities=capabilities, env=env, requested=requested,
                     policy=policy)

    def worker_caps(self, grant: Grant) -> dict[str, list[str]]:
        """Capability name -> method names, as the worker builds its frozen ``caps``: every
        provider's, granted or not. A call to one the grant lacks fails in ``host_for`` with
        ``capability_not_granted``, naming the manifest entry to add or saying the operator
        withholds it (a missing ``caps.docs`` would be a TypeError that tells the app's author
        nothing)."""
        return {name: sorted(provider.methods)
                for name, provider in sorted(self._providers.items())}

    def host_for(self, grant: Grant, *, user: str | None = None, request_id: str | None = None
                 ) -> Callable[[str, str, list[Any], Budget], Awaitable[Any]]:
        """The capability calls of one request."""
        app = grant.app
        requested = grant.requested.items if grant.requested is not None else {}
        local: dict[str, Any] = {}

        async def call(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
            if cap not in grant.capabilities or cap not in self._providers:
                raise CapabilityNotGranted(
                    f"the app's manifest does not grant {cap!r}: add \"capabilities\": "
                    f"{{\"{cap}\": {_EXAMPLE.get(cap, '{}')}}} to manifest.json"
                    if cap not in grant.policy.withheld else
                    f"the server's operator withholds {cap!r} from this app")
            fn = self._providers[cap].methods.get(method)
            if fn is None:
                raise CapabilityError(f"{cap} has no method {method!r}")
            return await fn(Call(app=app, budget=budget, user=user,
                                 quota_bytes=grant.capabilities[cap],
                                 requested=requested.get(cap), request_id=request_id,
                                 local=local), args)

        return call

