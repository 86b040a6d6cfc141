"""The registry of capability providers and the per-app grant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fazt.budget import Budget
from fazt.errors import CapabilityError, CapabilityNotGranted

Method = Callable[[str, list[Any], Budget], Awaitable[Any]]
"""``await method(app, args, budget)`` -> a JSON-able result."""


@dataclass(frozen=True, kw_only=True)
class Provider:
    name: str
    methods: Mapping[str, Method]


class Capabilities:
    """Dispatches capability calls from JS workers to providers, for granted apps only.

    ``grant_all`` names providers every app gets (a seam for tests and for capabilities that
    need no manifest entry); the manifest-driven grant arrives with the storage capabilities.
    """

    def __init__(self, providers: Iterable[Provider] = (), *,
                 grant_all: Iterable[str] = ()) -> None:
        self._providers = {p.name: p for p in providers}
        self._grant_all = frozenset(grant_all)
        unknown = self._grant_all - set(self._providers)
        if unknown:
            raise ValueError(f"grant_all names unknown providers: {sorted(unknown)}")

    def granted(self, app: str) -> dict[str, list[str]]:
        """Capability name -> method names, as the worker builds its frozen ``caps``."""
        return {name: sorted(self._providers[name].methods) for name in sorted(self._grant_all)}

    def host_for(self, app: str) -> Callable[[str, str, list[Any], Budget], Awaitable[Any]]:
        granted = self._grant_all

        async def call(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
            if cap not in granted:
                raise CapabilityNotGranted(
                    f"the app's manifest does not grant {cap!r}: add \"capabilities\": "
                    f"{{\"{cap}\": {{}}}} to manifest.json")
            fn = self._providers[cap].methods.get(method)
            if fn is None:
                raise CapabilityError(f"{cap} has no method {method!r}")
            return await fn(app, args, budget)

        return call
