"""manifest.json: name, ``spa``, ``limits`` and ``capabilities`` (see
docs/reference/manifest.md and its JSON Schema, manifest.schema.json).

Top-level keys fazt does not know are ignored (manifests written for the Go fazt carry some);
``fazt app validate`` warns about them. Everything fazt reads is checked, and an error names
the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fazt.capabilities import Requested, parse_capabilities
from fazt.errors import InvalidManifest

MANIFEST_PATH = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class Manifest:
    spa: bool = False
    name: str | None = None
    request_ms: int | None = None     # limits.request_ms: lowers the request budget
    memory_mb: int | None = None      # limits.memory_mb: the JS worker's memory limit
    # None: no "capabilities" key (an app written for the Go fazt runs in compatibility mode)
    capabilities: Requested | None = None
    text: str | None = None   # the file as deployed, kept for `fazt app info`


def parse_manifest(data: bytes | None) -> Manifest:
    """Validate manifest.json; errors point at the offending key."""
    if data is None:
        return Manifest()
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidManifest(f"manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidManifest(f"manifest.json is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidManifest("manifest.json must be a JSON object")
    spa = value.get("spa", False)
    if not isinstance(spa, bool):
        raise InvalidManifest(f"manifest.json: \"spa\" must be true or false, got {spa!r}")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidManifest(f"manifest.json: \"name\" must be a string, got {name!r}")
    limits = value.get("limits", {})
    if not isinstance(limits, dict):
        raise InvalidManifest(f"manifest.json: \"limits\" must be an object, got {limits!r}")
    unknown = sorted(set(limits) - set(_LIMITS))
    if unknown:
        raise InvalidManifest(f"manifest.json: unknown key \"limits.{unknown[0]}\" "
                              f"(known: {', '.join(sorted(_LIMITS))})")
    checked: dict[str, int] = {}
    for key, (low, high) in _LIMITS.items():
        item = limits.get(key)
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise InvalidManifest(f"manifest.json: \"limits.{key}\" must be an integer from "
                                  f"{low} to {high}, got {item!r}")
        checked[key] = item
    capabilities = value.get("capabilities")
    return Manifest(spa=spa, name=name, text=text, request_ms=checked.get("request_ms"),
                    memory_mb=checked.get("memory_mb"),
                    capabilities=None if capabilities is None
                    else parse_capabilities(capabilities))


KNOWN_KEYS = frozenset({"name", "spa", "limits", "capabilities"})


def unknown_keys(data: bytes) -> list[str]:
    """Top-level keys of a (valid) manifest that fazt ignores, for ``fazt app validate``."""
    value = json.loads(data)
    return sorted(set(value) - KNOWN_KEYS) if isinstance(value, dict) else []


# The server's own settings cap these further (budget_request_s, js_memory_mb_max).
_LIMITS = {"request_ms": (10, 600_000), "memory_mb": (64, 16_384)}
