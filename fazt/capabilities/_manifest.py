"""The ``capabilities`` section of an app's manifest.json: what the app asks for.

    "capabilities": {"kv": {}, "env": ["PUBLIC_URL"]}
    "capabilities": {"kv": {"quota_mb": 50}, "blobs": {}}
    "capabilities": {"docs": {"indexes": {"posts": ["author", ["author", "meta.score"]]}}}
    "capabilities": {"net": {"allow": ["api.github.com"], "secrets": ["GITHUB_TOKEN"],
                             "timeoutMs": 5000}}

What the app gets is this request intersected with the operator's policy and the server's
limits (``_grant.py``). Validation errors name the offending key (``capabilities.kv.quota_mb``),
as the rest of the manifest's do. ``docs/reference/manifest.schema.json`` states the same rules
as a JSON Schema; a test checks that both accept and refuse the same manifests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fazt.capabilities._allow import AllowEntry, BadPattern, parse_allow_entry
from fazt.errors import InvalidManifest

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
MAX_ENV_NAMES = 100
MAX_QUOTA_MB = 1_048_576
COLLECTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# A field name: not empty, not starting with $, no '.', '"', backslash or NUL (so that every
# field can be named by a path, and a path is a SQLite JSON path without escapes)
FIELD_NAME = r'[^.$"\\\x00][^."\\\x00]*'
FIELD_PATH = re.compile(rf"{FIELD_NAME}(\.{FIELD_NAME})*")
MAX_FIELD_PATH = 256
MAX_INDEXES = 32          # per app, all collections
MAX_INDEX_FIELDS = 4
MAX_ALLOW = 100
MAX_SECRETS = 50
MAX_NET_TIMEOUT_MS = 600_000


@dataclass(frozen=True, kw_only=True)
class StorageRequest:
    """kv (and the other stores): ``quota_mb`` asks for that much room (None: the server's
    default)."""

    quota_mb: int | None = None


@dataclass(frozen=True, kw_only=True)
class EnvRequest:
    """env: the names of the operator-set settings the handler may read (``every``: all of
    them, which only the Go compatibility grant asks for: the Go fazt's env had no list)."""

    names: tuple[str, ...] = ()
    every: bool = False


@dataclass(frozen=True, kw_only=True)
class DocsRequest(StorageRequest):
    """docs: a quota, and the indexes to keep: collection -> field paths of each index."""

    indexes: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NetRequest:
    """net: where the app may send requests, the secrets it may name, and the longest a call
    may take. ``allow`` None (only the Go compatibility grant): wherever the operator's net
    rules for the app allow; ``every_secret``: any secret (the Go fazt had no list)."""

    allow: tuple[AllowEntry, ...] | None = ()
    secrets: tuple[str, ...] = ()
    every_secret: bool = False
    timeout_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "allow": "operator" if self.allow is None else [e.text for e in self.allow],
            "secrets": "*" if self.every_secret else list(self.secrets)}
        if self.timeout_ms is not None:
            out["timeoutMs"] = self.timeout_ms
        return out


CapabilityRequest = StorageRequest | EnvRequest | NetRequest


@dataclass(frozen=True)
class Requested:
    """The parsed section: capability name -> its request (only the names the app lists)."""

    items: Mapping[str, CapabilityRequest]

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def get(self, name: str) -> CapabilityRequest | None:
        return self.items.get(name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, item in sorted(self.items.items()):
            if isinstance(item, EnvRequest):
                out[name] = "*" if item.every else list(item.names)
                continue
            if isinstance(item, NetRequest):
                out[name] = item.to_json()
                continue
            out[name] = {} if item.quota_mb is None else {"quota_mb": item.quota_mb}
            if isinstance(item, DocsRequest) and item.indexes:
                out[name]["indexes"] = {
                    coll: [list(f) if len(f) > 1 else f[0] for f in fields]
                    for coll, fields in item.indexes.items()}
        return out


GO_COMPAT = Requested({"kv": StorageRequest(), "docs": DocsRequest(), "blobs": StorageRequest(),
                       "env": EnvRequest(every=True),
                       "net": NetRequest(allow=None, every_secret=True)})
"""What an app written for the Go fazt is granted (its manifest has no "capabilities"): its
``fazt.storage``/``fazt.app`` kv, ds and s3, ``fazt.env`` with every env setting, and
``fazt.net.fetch`` to wherever the operator's net rules for it allow (the Go fazt's allowlist
was the operator's alone: with no rule, nothing)."""


def parse_capabilities(value: Any) -> Requested:
    """Validate the manifest's ``capabilities`` value (already JSON-decoded)."""
    if not isinstance(value, dict):
        raise _invalid("capabilities", "must be an object of capability name: settings",
                       value)
    items: dict[str, CapabilityRequest] = {}
    for name, settings in value.items():
        parser = _PARSERS.get(name)
        if parser is None:
            raise InvalidManifest(
                f"manifest.json: unknown capability \"capabilities.{name}\" "
                f"(known: {', '.join(sorted(_PARSERS))})")
        items[name] = parser(f"capabilities.{name}", settings)
    return Requested(items)


def _storage(key: str, value: Any) -> StorageRequest:
    _no_unknown_keys(key, _object(key, value), ("quota_mb",))
    return StorageRequest(quota_mb=_quota(key, value))


def _docs(key: str, value: Any) -> DocsRequest:
    _no_unknown_keys(key, _object(key, value), ("quota_mb", "indexes"))
    raw = value.get("indexes", {})
    if not isinstance(raw, dict):
        raise _invalid(f"{key}.indexes", "must be an object of collection: [field paths]", raw)
    indexes: dict[str, tuple[tuple[str, ...], ...]] = {}
    total = 0
    for coll, entries in raw.items():
        where = f"{key}.indexes.{coll}"
        if not COLLECTION.fullmatch(coll):
            raise InvalidManifest(f"manifest.json: \"{where}\": a collection name is 1 to 64 "
                                  "letters, digits, _ . and - (not starting with . or -)")
        if not isinstance(entries, list) or not entries:
            raise _invalid(where, "must be a non-empty list of field paths (or lists of them, "
                           "for a compound index)", entries)
        seen: list[tuple[str, ...]] = []
        for i, entry in enumerate(entries):
            fields = tuple(entry) if isinstance(entry, list) else (entry,)
            if not 1 <= len(fields) <= MAX_INDEX_FIELDS:
                raise _invalid(f"{where}[{i}]", f"must name 1 to {MAX_INDEX_FIELDS} fields",
                               entry)
            for path in fields:
                if not (isinstance(path, str) and len(path) <= MAX_FIELD_PATH
                        and FIELD_PATH.fullmatch(path)):
                    raise _invalid(f"{where}[{i}]", "must be a field path such as \"author\" "
                                   "or \"meta.score\" (names separated by dots, none empty, "
                                   "none starting with $, no \" or backslash)", path)
            if fields in seen:
                raise InvalidManifest(f"manifest.json: \"{where}\" lists an index twice")
            seen.append(fields)
        total += len(seen)
        indexes[coll] = tuple(seen)
    if total > MAX_INDEXES:
        raise InvalidManifest(f"manifest.json: \"{key}.indexes\" asks for {total} indexes, "
                              f"more than {MAX_INDEXES}")
    return DocsRequest(quota_mb=_quota(key, value), indexes=indexes)


def _object(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(key, "must be an object ({} for the defaults)", value)
    return value


def _quota(key: str, value: dict[str, Any]) -> int | None:
    quota = value.get("quota_mb")
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int)
                              or not 1 <= quota <= MAX_QUOTA_MB):
        raise _invalid(f"{key}.quota_mb", f"must be an integer from 1 to {MAX_QUOTA_MB}",
                       quota)
    return quota


def _env(key: str, value: Any) -> EnvRequest:
    if not isinstance(value, list):
        raise _invalid(key, "must be a list of setting names, e.g. [\"PUBLIC_URL\"]", value)
    if len(value) > MAX_ENV_NAMES:
        raise InvalidManifest(f"manifest.json: \"{key}\" lists more than {MAX_ENV_NAMES} names")
    return EnvRequest(names=_names(key, value))


def _names(key: str, names: list[Any]) -> tuple[str, ...]:
    """A list of env-style names (env settings, secrets): each well formed, none twice."""
    for i, name in enumerate(names):
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise _invalid(f"{key}[{i}]", "must be a name of A-Z, 0-9 and _ (not starting "
                           "with a digit, at most 64 characters)", name)
    if len(set(names)) != len(names):
        raise InvalidManifest(f"manifest.json: \"{key}\" lists a name twice")
    return tuple(names)


def _net(key: str, value: Any) -> NetRequest:
    if not isinstance(value, dict):
        raise _invalid(key, "must be an object such as {\"allow\": [\"api.example.com\"]}",
                       value)
    _no_unknown_keys(key, value, ("allow", "secrets", "timeoutMs"))
    raw = value.get("allow")
    if not isinstance(raw, list) or not raw:
        raise _invalid(f"{key}.allow", "must be a non-empty list of hosts the app may fetch, "
                       "e.g. [\"api.github.com\", \"*.googleapis.com\"]", raw)
    if len(raw) > MAX_ALLOW:
        raise InvalidManifest(f"manifest.json: \"{key}.allow\" lists more than {MAX_ALLOW} "
                              "entries")
    allow: list[AllowEntry] = []
    for i, text in enumerate(raw):
        try:
            entry = parse_allow_entry(text)
        except BadPattern as exc:
            raise _invalid(f"{key}.allow[{i}]", str(exc), text) from None
        if any(e.canonical == entry.canonical for e in allow):
            raise _invalid(f"{key}.allow[{i}]", "repeats an earlier entry", text)
        allow.append(entry)
    secrets = value.get("secrets", [])
    if not isinstance(secrets, list) or len(secrets) > MAX_SECRETS:
        raise _invalid(f"{key}.secrets", f"must be a list of at most {MAX_SECRETS} secret "
                       "names, e.g. [\"GITHUB_TOKEN\"]", secrets)
    names = _names(f"{key}.secrets", secrets)
    timeout = value.get("timeoutMs")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                or not 1 <= timeout <= MAX_NET_TIMEOUT_MS):
        raise _invalid(f"{key}.timeoutMs", f"must be an integer from 1 to {MAX_NET_TIMEOUT_MS}",
                       timeout)
    return NetRequest(allow=tuple(allow), secrets=names, timeout_ms=timeout)


_PARSERS: dict[str, Callable[[str, Any], CapabilityRequest]] = {
    "kv": _storage,
    "docs": _docs,
    "blobs": _storage,
    "env": _env,
    "net": _net,
}
KNOWN = frozenset(_PARSERS)
WITH_QUOTA = frozenset(name for name, parser in _PARSERS.items() if parser in (_storage, _docs))


def _no_unknown_keys(key: str, value: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise InvalidManifest(f"manifest.json: unknown key \"{key}.{unknown[0]}\" "
                              f"(known: {', '.join(known)})")


def _invalid(key: str, rule: str, value: Any) -> InvalidManifest:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidManifest(f"manifest.json: \"{key}\" {rule}, got {shown}")
