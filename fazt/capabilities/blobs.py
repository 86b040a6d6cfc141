"""The ``blobs`` capability: an app's files (bytes with a content type), and their URLs.

    await blobs.put("avatars/ann.png", bytes, {contentType: "image/png"})
        -> {key, size, contentType, sha256, public, updatedAt}
    await blobs.put("notes/today.txt", "text is stored as UTF-8")
    await blobs.get("avatars/ann.png")  -> {data: Uint8Array, contentType, size, ..., text()}
    await blobs.delete(key) -> true/false    await blobs.list("avatars/", {limit, cursor})
    await blobs.url(key, {expiresIn: 3600})  -> "/_fazt/blobs/avatars/ann.png?expires=...&sig=..."
    blobs.user.put(...) ...                   the same, confined to the signed-in user

Bytes cross the worker boundary raw, beside the call's JSON (``Binary``), never as base64.
A blob put with ``{public: true}`` is served to anyone at ``/_fazt/blobs/<key>`` on the app's
host; any other blob only at a signed URL from ``url()``, valid until it expires (an HMAC of
app, scope, key and expiry under a server secret kept in the database). Writes go through the
group-commit writer, are charged to the app's blobs quota (key + data bytes) in the same
transaction and change nothing when they fail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import trio

from fazt.capabilities import _store
from fazt.capabilities._registry import Binary, Call, Provider
from fazt.capabilities._store import Clock, arity, options, wall_clock_ms, whole_number
from fazt.errors import CapabilityError, KeyTooLarge, ValueTooLarge
from fazt.storage import Database

NAME = "blobs"
MAX_KEY_BYTES = 1024
MAX_BLOB_BYTES = 4 * 1024 * 1024
LIST_DEFAULT = 100
LIST_MAX = 1000
URL_DEFAULT_S = 3600
URL_MAX_S = 7 * 86_400
URL_PREFIX = "/_fazt/blobs/"
SECRET_NAME = "blob_urls"  # noqa: S105 (the name of the secret, not a secret)
METHODS = ("put", "get", "delete", "list", "url")
TEXT_TYPE = "text/plain; charset=utf-8"
BINARY_TYPE = "application/octet-stream"
# A content type: type/subtype and parameters, printable ASCII, no CR/LF (it becomes a header)
CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[ -~]*)?")
MAX_CONTENT_TYPE = 255
_SIG_BYTES = 16


@dataclass(frozen=True, kw_only=True)
class Blob:
    """A blob as the server serves it to a browser."""

    data: bytes
    content_type: str
    sha256: str
    public: bool
    updated_at: int


class BlobStore:
    """The blobs provider, and the lookups behind ``/_fazt/blobs/`` URLs."""

    def __init__(self, db: Database, *, url_secret: bytes, clock: Clock = wall_clock_ms,
                 max_blob_bytes: int = MAX_BLOB_BYTES) -> None:
        if len(url_secret) < 32:
            raise ValueError("the URL secret must be at least 32 bytes")
        self._db = db
        self._secret = url_secret
        self._clock = clock
        self._max_bytes = max_blob_bytes

    @staticmethod
    async def load_secret(db: Database, *, op_timeout_s: float) -> bytes:
        """The server's URL-signing secret, made on first use (kept in the database)."""
        fresh = secrets.token_bytes(32)

        def write(conn: Any) -> bytes:
            conn.execute("INSERT INTO server_secrets (name, value, created_at) "
                         "VALUES (?, ?, datetime('now')) ON CONFLICT DO NOTHING",
                         (SECRET_NAME, fresh))
            row = conn.execute("SELECT value FROM server_secrets WHERE name = ?",
                               (SECRET_NAME,)).fetchone()
            return bytes(row[0])

        return bytes(await db.write(write, deadline=trio.current_time() + op_timeout_s))

    def provider(self) -> Provider:
        return _store.scoped_provider(NAME, {m: getattr(self, f"_{m}") for m in METHODS})

    # -- methods -----------------------------------------------------------------------------

    async def _put(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        key, data, *rest = arity(label, args, 2, 3)
        key = _key(label, key)
        given = options(label, rest[0] if rest else None, ("contentType", "public"))
        body, default_type = _bytes_of(label, data)
        if len(body) > self._max_bytes:
            raise ValueTooLarge(f"{label}: the blob is {len(body)} bytes, over the "
                                f"{self._max_bytes}-byte limit")
        content_type = _content_type(label, given.get("contentType", default_type))
        public = given.get("public", False)
        if not isinstance(public, bool):
            raise CapabilityError(f"{label}: public must be true or false")
        if public and scope:
            raise CapabilityError(f"{label}: a user's blobs cannot be public; share one with "
                                  "blobs.user.url(key)")
        sha = hashlib.sha256(body).hexdigest()
        now = self._clock()

        def write(conn: Any) -> None:
            row = conn.execute("SELECT length(CAST(key AS BLOB)) + size FROM app_blobs "
                               "WHERE app = ? AND scope = ? AND key = ?",
                               (call.app, scope, key)).fetchone()
            old = 0 if row is None else int(row[0])
            _store.charge(conn, call, NAME, label, len(key.encode("utf-8")) + len(body) - old)
            conn.execute("INSERT INTO app_blobs (app, scope, key, data, content_type, size, "
                         "sha256, public, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                         "data = excluded.data, content_type = excluded.content_type, "
                         "size = excluded.size, sha256 = excluded.sha256, "
                         "public = excluded.public, updated_at = excluded.updated_at",
                         (call.app, scope, key, body, content_type, len(body), sha, int(public),
                          now, now))

        await _store.write(self._db, call, write)
        return _meta(key, len(body), content_type, sha, public, now)

    async def _get(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        key = _key(label, arity(label, args, 1, 1)[0])

        def read(conn: Any) -> Any:
            return conn.execute("SELECT data, content_type, size, sha256, public, updated_at "
                                "FROM app_blobs WHERE app = ? AND scope = ? AND key = ?",
                                (call.app, scope, key)).fetchone()

        row = await _store.read(self._db, call, read)
        if row is None:
            return None
        data, content_type, size, sha, public, updated = row
        return Binary(_meta(key, size, content_type, sha, bool(public), updated), bytes(data))

    async def _delete(self, call: Call, scope: str, label: str, args: list[Any]) -> bool:
        key = _key(label, arity(label, args, 1, 1)[0])

        def write(conn: Any) -> bool:
            row = conn.execute("DELETE FROM app_blobs WHERE app = ? AND scope = ? AND key = ? "
                               "RETURNING length(CAST(key AS BLOB)) + size",
                               (call.app, scope, key)).fetchone()
            if row is None:
                return False
            _store.charge(conn, call, NAME, label, -int(row[0]))
            return True

        return bool(await _store.write(self._db, call, write))

    async def _list(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        page = _store.key_page(label, args, max_key_bytes=MAX_KEY_BYTES, default=LIST_DEFAULT,
                               maximum=LIST_MAX)
        rows, cursor = await _store.read_key_page(
            self._db, call, "SELECT key, size, content_type, sha256, public, updated_at FROM "
            "app_blobs WHERE app = ? AND scope = ?", (call.app, scope), page)
        items = [_meta(k, size, ct, sha, bool(pub), upd) for k, size, ct, sha, pub, upd in rows]
        return {"items": items, "cursor": cursor}

    async def _url(self, call: Call, scope: str, label: str, args: list[Any]) -> str:
        key, *rest = arity(label, args, 1, 2)
        key = _key(label, key)
        given = options(label, rest[0] if rest else None, ("expiresIn",))
        seconds = whole_number(label, "expiresIn", given.get("expiresIn", URL_DEFAULT_S), 1,
                               URL_MAX_S)
        expires = self._clock() // 1000 + seconds
        query = {"expires": str(expires)}
        if scope:
            query["scope"] = scope
        query["sig"] = self._sign(call.app, scope, key, expires)
        return blob_path(key) + "?" + urlencode(query)

    # -- serving -----------------------------------------------------------------------------

    def check_url(self, app: str, key: str, *, scope: str, expires: str | None,
                  sig: str | None) -> bool | None:
        """For a request to a blob URL: True if it carries a valid, unexpired signature, False
        if it carries a bad or expired one, None if it carries none (public blobs only)."""
        if sig is None and expires is None and not scope:
            return None
        if sig is None or expires is None or not (expires.isascii() and expires.isdigit()) \
                or len(expires) > 12 or not sig.isascii():
            return False
        if int(expires) < self._clock() // 1000:
            return False
        return hmac.compare_digest(sig, self._sign(app, scope, key, int(expires)))

    async def lookup(self, app: str, key: str, *, scope: str, deadline: float) -> Blob | None:
        def read(conn: Any) -> Any:
            return conn.execute("SELECT data, content_type, sha256, public, updated_at "
                                "FROM app_blobs WHERE app = ? AND scope = ? AND key = ?",
                                (app, scope, key)).fetchone()

        row = await self._db.read(read, deadline=deadline)
        if row is None:
            return None
        return Blob(data=bytes(row[0]), content_type=row[1], sha256=row[2], public=bool(row[3]),
                    updated_at=int(row[4]))

    def _sign(self, app: str, scope: str, key: str, expires: int) -> str:
        message = "\x00".join((app, scope, key, str(expires))).encode("utf-8")
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def blob_path(key: str) -> str:
    return URL_PREFIX + quote(key, safe="/-._~")


def _key(label: str, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise CapabilityError(f"{label}: the key must be a non-empty string")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise KeyTooLarge(f"{label}: the key is over {MAX_KEY_BYTES} bytes")
    if any(c < " " or c == "\x7f" for c in key):
        raise CapabilityError(f"{label}: the key contains a control character")
    return key


def _bytes_of(label: str, data: Any) -> tuple[bytes, str]:
    if isinstance(data, bytes):         # a Uint8Array or ArrayBuffer argument
        return data, BINARY_TYPE
    if isinstance(data, str):
        return data.encode("utf-8"), TEXT_TYPE
    if isinstance(data, dict) and set(data) == {"$bytes"} and isinstance(data["$bytes"], str):
        try:
            return base64.b64decode(data["$bytes"], validate=True), BINARY_TYPE
        except (binascii.Error, ValueError) as exc:
            raise CapabilityError(f"{label}: the data is not valid base64") from exc
    raise CapabilityError(f"{label}: the data must be a string, a Uint8Array or an ArrayBuffer")


def _content_type(label: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_CONTENT_TYPE \
            or not CONTENT_TYPE.fullmatch(value):
        raise CapabilityError(f"{label}: contentType must be a media type such as "
                              "\"image/png\" or \"text/html; charset=utf-8\"")
    return value


def _meta(key: str, size: int, content_type: str, sha: str, public: bool,
          updated: int) -> dict[str, Any]:
    return {"key": key, "size": size, "contentType": content_type, "sha256": sha,
            "public": public, "updatedAt": updated}
