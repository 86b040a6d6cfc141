"""Apps, deploys and the VFS: everything lives in the database.

A deploy is validated completely in memory (``read_archive``) before anything is written, then
written by one storage write: the new ``deploys`` row, its ``files`` and any new ``blobs``
(content-addressed, shared between deploys) and the switch of ``apps.current_deploy_id``. One
transaction, so a request sees the old deploy or the new one, never a mix.

Serving reads an in-memory ``Site`` (the file index of the live deploy) and blob bytes from a
byte-bounded LRU keyed by sha256. Both are immutable per deploy, so the only invalidation is
"this app changed", done after the write commits; a generation counter stops a read that raced a
deploy from caching the old index.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlcipher3
import trio

from fazt.auth._tokens import now_iso
from fazt.errors import (
    AppNotFound,
    Conflict,
    DeployNotFound,
    InvalidManifest,
    NotFound,
    StorageCorrupt,
)
from fazt.hosting._archive import ArchiveContents, ArchiveLimits, read_archive
from fazt.hosting._manifest import MANIFEST_PATH, Manifest, parse_manifest
from fazt.hosting._mime import content_type_for
from fazt.hosting._names import validate_app_name
from fazt.hosting._site import CHUNK_BYTES, Site, StaticFile
from fazt.sandbox import exports_handler
from fazt.storage import Database

T = TypeVar("T")
_NEGATIVE_CACHE_MAX = 10_000
MAIN_SCRIPT = "api/main.js"


@dataclass(frozen=True, kw_only=True)
class DeployInfo:
    id: int
    app: str
    created_at: str
    file_count: int
    total_bytes: int
    spa: bool
    source: str
    current: bool
    runtime: str = "fazt"      # "go": api/main.js runs in the Go fazt compatibility mode

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "app": self.app, "created_at": self.created_at,
                "file_count": self.file_count, "total_bytes": self.total_bytes,
                "spa": self.spa, "source": self.source, "current": self.current,
                "runtime": self.runtime}


@dataclass(frozen=True, kw_only=True)
class AppInfo:
    name: str
    created_at: str
    current: DeployInfo | None
    deploys: tuple[DeployInfo, ...]
    manifest: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at,
                "current": self.current.to_json() if self.current else None,
                "deploys": [d.to_json() for d in self.deploys], "manifest": self.manifest}


@dataclass(frozen=True, kw_only=True)
class DeployResult:
    deploy: DeployInfo
    skipped: tuple[str, ...]
    new_blob_bytes: int


@dataclass(frozen=True, slots=True)
class _Prepared:
    manifest: Manifest
    runtime: str
    files: tuple[tuple[StaticFile, bytes], ...]
    total_bytes: int
    skipped: tuple[str, ...]


class _ByteLru:
    """sha256 -> bytes, bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        data = self._items.get(key)
        if data is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes // 8 or key in self._items:
            return
        self._items[key] = data
        self.bytes += len(data)
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= len(old)


OnActivate = Callable[[sqlcipher3.Connection, str, Manifest | None], None]
"""Called in the transaction that makes a deploy live (deploy, rollback) with its manifest, or
removes the app (None): what else must change with the live manifest (the docs indexes) changes
in the same transaction, and a failure undoes the deploy."""


class Hosting:
    """Deploys, history, rollback and the read side used by the static server."""

    def __init__(self, db: Database, *, limits: ArchiveLimits, history: int,
                 cache_bytes: int, op_timeout_s: float, deploy_timeout_s: float,
                 on_activate: OnActivate | None = None) -> None:
        self._db = db
        self._on_activate = on_activate
        self.limits = limits
        self._history = history
        self._op_timeout_s = op_timeout_s
        self._deploy_timeout_s = deploy_timeout_s
        self._sites: dict[str, Site | None] = {}
        self._generation: dict[str, int] = {}
        self._blobs = _ByteLru(cache_bytes)

    # -- deploy -----------------------------------------------------------------------------

    async def deploy(self, name: str, archive: bytes, *, source: str = "api") -> DeployResult:
        """Validate the archive, then swap it in atomically."""
        validate_app_name(name)
        limits = self.limits
        contents = await trio.to_thread.run_sync(lambda: read_archive(archive, limits=limits))
        return await self.deploy_contents(name, contents, source=source)

    async def deploy_contents(self, name: str, contents: ArchiveContents, *,
                              source: str) -> DeployResult:
        validate_app_name(name)
        prepared = await trio.to_thread.run_sync(_prepare, contents)
        created_at = now_iso()
        history = self._history

        def write(conn: sqlcipher3.Connection) -> tuple[int, int]:
            conn.execute("INSERT INTO apps(name, created_at) VALUES (?, ?) "
                         "ON CONFLICT(name) DO NOTHING", (name, created_at))
            cur = conn.execute(
                "INSERT INTO deploys(app, created_at, file_count, total_bytes, spa, manifest, "
                "source, runtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, created_at, len(prepared.files), prepared.total_bytes,
                 int(prepared.manifest.spa), prepared.manifest.text, source, prepared.runtime))
            deploy_id = int(cur.lastrowid or 0)
            new_bytes = 0
            for meta, data in prepared.files:
                cur = conn.execute("INSERT INTO blobs(sha256, size) VALUES (?, ?) "
                                   "ON CONFLICT(sha256) DO NOTHING", (meta.sha256, meta.size))
                if cur.rowcount:
                    new_bytes += meta.size
                    conn.executemany(
                        "INSERT INTO blob_chunks(sha256, seq, data) VALUES (?, ?, ?)",
                        [(meta.sha256, seq, data[start:start + CHUNK_BYTES])
                         for seq, start in enumerate(range(0, max(len(data), 1), CHUNK_BYTES))])
            conn.executemany(
                "INSERT INTO files(deploy_id, path, sha256, size, content_type) "
                "VALUES (?, ?, ?, ?, ?)",
                [(deploy_id, m.path, m.sha256, m.size, m.content_type)
                 for m, _ in prepared.files])
            conn.execute("UPDATE apps SET current_deploy_id = ? WHERE name = ?", (deploy_id, name))
            self._activate(conn, name, prepared.manifest)
            _prune_history(conn, name, keep=history)
            return deploy_id, new_bytes

        deploy_id, new_bytes = await self._write_app(
            name, write, deadline=trio.current_time() + self._deploy_timeout_s)
        info = DeployInfo(id=deploy_id, app=name, created_at=created_at,
                          file_count=len(prepared.files), total_bytes=prepared.total_bytes,
                          spa=prepared.manifest.spa, source=source, current=True,
                          runtime=prepared.runtime)
        return DeployResult(deploy=info, skipped=prepared.skipped, new_blob_bytes=new_bytes)

    async def rollback(self, name: str, *, to: int | None = None) -> DeployInfo:
        """Make an earlier deploy live again (default: the one before the current one)."""

        def write(conn: sqlcipher3.Connection) -> DeployInfo:
            current = _current_deploy_id(conn, name)
            if to is None:
                row = conn.execute("SELECT id FROM deploys WHERE app = ? AND id < ? "
                                   "ORDER BY id DESC LIMIT 1", (name, current or 0)).fetchone()
                if row is None:
                    raise Conflict(f"app {name!r} has no earlier deploy to roll back to")
                target = int(row[0])
            else:
                row = conn.execute("SELECT id FROM deploys WHERE app = ? AND id = ?",
                                   (name, to)).fetchone()
                if row is None:
                    raise DeployNotFound(f"app {name!r} has no deploy {to}")
                target = to
            conn.execute("UPDATE apps SET current_deploy_id = ? WHERE name = ?", (target, name))
            text = conn.execute("SELECT manifest FROM deploys WHERE id = ?", (target,)).fetchone()
            self._activate(conn, name, _stored_manifest(text[0]))
            row = conn.execute("SELECT d.id, d.app, d.created_at, d.file_count, d.total_bytes, "
                               "d.spa, d.source, d.runtime FROM deploys d WHERE d.id = ?",
                               (target,)).fetchone()
            deploy = _deploy_from_row(row, current_id=target)
            assert deploy is not None
            return deploy

        return await self._write_app(name, write, deadline=self._deadline())

    async def remove(self, name: str) -> None:
        """Delete an app, its deploy history and the blobs nothing else uses."""

        def write(conn: sqlcipher3.Connection) -> None:
            _current_deploy_id(conn, name)
            shas = [r[0] for r in conn.execute(
                "SELECT DISTINCT f.sha256 FROM files f JOIN deploys d ON d.id = f.deploy_id "
                "WHERE d.app = ?", (name,))]
            conn.execute("UPDATE apps SET current_deploy_id = NULL WHERE name = ?", (name,))
            conn.execute("DELETE FROM deploys WHERE app = ?", (name,))
            conn.execute("DELETE FROM apps WHERE name = ?", (name,))
            self._activate(conn, name, None)
            _delete_orphan_blobs(conn, shas)

        await self._write_app(name, write, deadline=self._deadline())

    # -- queries ----------------------------------------------------------------------------

    async def list_apps(self) -> list[AppInfo]:
        def read(conn: sqlcipher3.Connection) -> list[AppInfo]:
            rows = conn.execute(
                "SELECT a.name, a.created_at, d.id, d.app, d.created_at, d.file_count, "
                "d.total_bytes, d.spa, d.source, d.runtime FROM apps a "
                "LEFT JOIN deploys d ON d.id = a.current_deploy_id ORDER BY a.name").fetchall()
            return [AppInfo(name=r[0], created_at=r[1],
                            current=_deploy_from_row(r[2:], current_id=r[2]),
                            deploys=(), manifest=None) for r in rows]

        return await self._db.read(read, deadline=self._deadline())

    async def app_info(self, name: str) -> AppInfo:
        def read(conn: sqlcipher3.Connection) -> AppInfo:
            row = conn.execute("SELECT created_at, current_deploy_id FROM apps WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                raise AppNotFound(f"no app named {name!r}")
            created_at, current_id = row
            rows = conn.execute("SELECT d.id, d.app, d.created_at, d.file_count, d.total_bytes, "
                                "d.spa, d.source, d.runtime FROM deploys d WHERE d.app = ? "
                                "ORDER BY d.id DESC", (name,)).fetchall()
            deploys = tuple(d for d in (_deploy_from_row(r, current_id=current_id) for r in rows)
                            if d is not None)
            manifest = conn.execute("SELECT manifest FROM deploys WHERE id = ?",
                                    (current_id,)).fetchone()
            current = next((d for d in deploys if d.current), None)
            return AppInfo(name=name, created_at=created_at, current=current, deploys=deploys,
                           manifest=manifest[0] if manifest else None)

        return await self._db.read(read, deadline=self._deadline())

    async def has_ever_deployed(self) -> bool:
        """True once any deploy was made (deploy ids are AUTOINCREMENT: the counter remembers
        deploys that were removed since)."""

        def read(conn: sqlcipher3.Connection) -> bool:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'deploys'").fetchone()
            return row is not None and row[0] > 0

        return await self._db.read(read, deadline=self._deadline())

    async def app_exists(self, name: str) -> bool:
        def read(conn: sqlcipher3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone() is not None

        return await self._db.read(read, deadline=self._deadline())

    # -- serving ----------------------------------------------------------------------------

    async def site(self, name: str) -> Site | None:
        """The live file index of an app, or None when no such app is deployed."""
        try:
            return self._sites[name]
        except KeyError:
            pass
        generation = self._generation.get(name, 0)

        def read(conn: sqlcipher3.Connection) -> Site | None:
            row = conn.execute(
                "SELECT d.id, d.spa, d.manifest, d.runtime FROM apps a "
                "JOIN deploys d ON d.id = a.current_deploy_id "
                "WHERE a.name = ?", (name,)).fetchone()
            if row is None:
                return None
            deploy_id, spa = int(row[0]), bool(row[1])
            files = {r[0]: StaticFile(path=r[0], sha256=r[1], size=r[2], content_type=r[3])
                     for r in conn.execute("SELECT path, sha256, size, content_type FROM files "
                                           "WHERE deploy_id = ?", (deploy_id,))}
            return Site(app=name, deploy_id=deploy_id, spa=spa, files=files,
                        manifest=_stored_manifest(row[2]), runtime=row[3],
                        generation=generation)

        site = await self._db.read(read, deadline=self._deadline())
        if self._generation.get(name, 0) == generation:
            if site is None and len(self._sites) >= _NEGATIVE_CACHE_MAX:
                self._sites = {k: v for k, v in self._sites.items() if v is not None}
            self._sites[name] = site
        return site

    async def load(self, file: StaticFile) -> bytes:
        """The bytes of a file (from the LRU, else the database)."""
        data = self._blobs.get(file.sha256)
        if data is not None:
            return data
        data = await self.load_range(file, 0, file.size - 1) if file.size else b""
        self._blobs.put(file.sha256, data)
        return data

    async def load_range(self, file: StaticFile, first: int, last: int) -> bytes:
        """Bytes ``first..last`` (inclusive) of a file, reading only the chunks that hold them."""
        sha = file.sha256
        first_seq, last_seq = first // CHUNK_BYTES, last // CHUNK_BYTES

        def read(conn: sqlcipher3.Connection) -> bytes:
            rows = conn.execute("SELECT data FROM blob_chunks WHERE sha256 = ? AND seq BETWEEN "
                                "? AND ? ORDER BY seq", (sha, first_seq, last_seq)).fetchall()
            return b"".join(bytes(r[0]) for r in rows)

        data = await self._db.read(read, deadline=self._deadline())
        if not data:
            raise NotFound(f"{file.path!r} was removed by a newer deploy")
        offset = first - first_seq * CHUNK_BYTES
        part = data[offset:offset + last - first + 1]
        if len(part) != last - first + 1:
            raise StorageCorrupt(f"stored bytes of {file.path!r} are incomplete")
        return part

    def cache_stats(self) -> dict[str, int]:
        return {"sites": sum(1 for s in self._sites.values() if s is not None),
                "blob_cache_bytes": self._blobs.bytes, "blob_cache_hits": self._blobs.hits,
                "blob_cache_misses": self._blobs.misses}

    # -- internals --------------------------------------------------------------------------

    def _activate(self, conn: sqlcipher3.Connection, name: str,
                  manifest: Manifest | None) -> None:
        if self._on_activate is not None:
            self._on_activate(conn, name, manifest)

    def _deadline(self) -> float:
        return trio.current_time() + self._op_timeout_s

    async def _write_app(self, name: str, fn: Callable[[sqlcipher3.Connection], T], *,
                         deadline: float) -> T:
        """Write, and forget what is cached for the app whatever happens.

        The caches are dropped before the write is queued and again when it has ended
        (``on_done`` fires even when this caller timed out or was cancelled and the write
        committed later), so no read can keep a pre-write view of the app.
        """
        self._invalidate(name)
        return await self._db.write(fn, deadline=deadline,
                                    on_done=lambda: self._invalidate(name))

    def _invalidate(self, name: str) -> None:
        self._generation[name] = self._generation.get(name, 0) + 1
        self._sites.pop(name, None)


def _stored_manifest(text: str | None) -> Manifest:
    """The manifest of a live deploy (validated when it was deployed)."""
    try:
        return parse_manifest(text.encode("utf-8") if text is not None else None)
    except InvalidManifest:   # deployed under older rules: serve it with defaults
        return Manifest()


def _deploy_from_row(row: Any, *, current_id: int | None) -> DeployInfo | None:
    if row[0] is None:
        return None
    return DeployInfo(id=row[0], app=row[1], created_at=row[2], file_count=row[3],
                      total_bytes=row[4], spa=bool(row[5]), source=row[6],
                      current=row[0] == current_id, runtime=row[7])


def _current_deploy_id(conn: sqlcipher3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT current_deploy_id FROM apps WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise AppNotFound(f"no app named {name!r}")
    return None if row[0] is None else int(row[0])


def _prune_history(conn: sqlcipher3.Connection, name: str, *, keep: int) -> None:
    old = [r[0] for r in conn.execute(
        "SELECT id FROM deploys WHERE app = ? AND id NOT IN "
        "(SELECT id FROM deploys WHERE app = ? ORDER BY id DESC LIMIT ?) "
        "AND id IS NOT (SELECT current_deploy_id FROM apps WHERE name = ?)",
        (name, name, keep, name))]
    if not old:
        return
    marks = ",".join("?" * len(old))
    shas = [r[0] for r in conn.execute(
        f"SELECT DISTINCT sha256 FROM files WHERE deploy_id IN ({marks})", old)]  # noqa: S608
    conn.execute(f"DELETE FROM deploys WHERE id IN ({marks})", old)  # noqa: S608
    _delete_orphan_blobs(conn, shas)


def _delete_orphan_blobs(conn: sqlcipher3.Connection, shas: list[str]) -> None:
    conn.executemany("DELETE FROM blobs WHERE sha256 = ? AND NOT EXISTS "
                     "(SELECT 1 FROM files WHERE files.sha256 = blobs.sha256)",
                     [(s,) for s in shas])


def runtime_of(manifest: Manifest, main: bytes | None) -> str:
    """"go" for an app written for the Go fazt: its manifest has no "capabilities" key and its
    api/main.js is a script that exports no handler; else "fazt"."""
    if manifest.capabilities is not None or main is None:
        return "fazt"
    try:
        return "fazt" if exports_handler(main.decode("utf-8")) else "go"
    except UnicodeDecodeError:
        return "fazt"          # not loadable either way; the load says why


def _prepare(contents: ArchiveContents) -> _Prepared:
    """Hash files and read the manifest (CPU work, run in a thread)."""
    manifest_data = next((f.data for f in contents.files if f.path == MANIFEST_PATH), None)
    manifest = parse_manifest(manifest_data)
    files = tuple(
        (StaticFile(path=f.path, sha256=hashlib.sha256(f.data).hexdigest(), size=len(f.data),
                    content_type=content_type_for(f.path)), f.data)
        for f in contents.files)
    main = next((f.data for f in contents.files if f.path == MAIN_SCRIPT), None)
    return _Prepared(manifest=manifest, runtime=runtime_of(manifest, main), files=files,
                     total_bytes=sum(m.size for m, _ in files), skipped=contents.skipped)
