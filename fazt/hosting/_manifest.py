"""manifest.json: the part static hosting reads (``spa``); the capability issue extends it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fazt.errors import InvalidManifest

MANIFEST_PATH = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class Manifest:
    spa: bool = False
    name: str | None = None
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
    return Manifest(spa=spa, name=name, text=text)
