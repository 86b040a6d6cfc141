"""What the static server needs to know about an app's live deploy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fazt.capabilities import GO_COMPAT, Requested
from fazt.hosting._manifest import Manifest

CHUNK_BYTES = 256 * 1024
"""Stored file bytes are split in chunks of this size: the unit of streaming and range reads."""


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of a deploy; its bytes live in the ``blobs`` table, keyed by sha256."""

    path: str
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True, kw_only=True)
class Site:
    """The file index of an app's current deploy (immutable: a new deploy is a new Site)."""

    app: str
    deploy_id: int
    spa: bool
    files: Mapping[str, StaticFile]
    manifest: Manifest = field(default_factory=Manifest)
    runtime: str = "fazt"  # "go": api/main.js runs in the Go fazt compatibility mode
    generation: int = 0    # increases with every index read: a higher one is newer

    @property
    def capabilities(self) -> Requested | None:
        """What the app asks for: its manifest's section, or the Go compatibility grant."""
        return GO_COMPAT if self.runtime == "go" else self.manifest.capabilities
