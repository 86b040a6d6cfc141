"""Admin API tokens.

A token is ``fazt_`` followed by 43 url-safe characters (256 random bits). Only its SHA-256 is
stored; verification is a dictionary lookup of that digest (the digest of a high-entropy secret
leaks nothing useful through timing), kept in memory and refreshed on every change.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import sqlcipher3
import trio

from fazt.errors import BadRequest, BudgetExceeded, StorageError, TokenNotFound
from fazt.storage import Database

T = TypeVar("T")
log = logging.getLogger("fazt.auth")
TOKEN_PREFIX = "fazt_"  # noqa: S105 (a prefix, not a secret)
_LAST_USED_RESOLUTION_S = 60.0
MAX_TOKEN_NAME = 64


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    id: str
    name: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at,
                "last_used_at": self.last_used_at, "revoked_at": self.revoked_at}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class TokenStore:
    """Creates, lists, revokes and verifies admin tokens."""

    def __init__(self, db: Database, *, op_timeout_s: float) -> None:
        self._db = db
        self._op_timeout_s = op_timeout_s
        self._active: dict[str, str] | None = None     # sha256 -> token id
        self._generation = 0   # bumped around every write: a read that raced one is not cached
        self._last_used_written: dict[str, float] = {}

    def _deadline(self) -> float:
        return trio.current_time() + self._op_timeout_s

    async def create(self, name: str) -> tuple[TokenInfo, str]:
        """A new token; the secret is returned once and never stored."""
        name = name.strip()
        if not name or len(name) > MAX_TOKEN_NAME or not name.isprintable():
            raise BadRequest(f"token name must be 1-{MAX_TOKEN_NAME} printable characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(id="tok_" + secrets.token_hex(6), name=name, created_at=now_iso(),
                         last_used_at=None, revoked_at=None)

        def insert(conn: sqlcipher3.Connection) -> None:
            conn.execute(
                "INSERT INTO tokens(id, name, token_sha256, created_at) VALUES (?, ?, ?, ?)",
                (info.id, info.name, _digest(secret), info.created_at))

        await self._write(insert)
        return info, secret

    async def list(self) -> list[TokenInfo]:
        def select(conn: sqlcipher3.Connection) -> list[TokenInfo]:
            rows = conn.execute(
                "SELECT id, name, created_at, last_used_at, revoked_at FROM tokens "
                "ORDER BY created_at, id").fetchall()
            return [TokenInfo(id=r[0], name=r[1], created_at=r[2], last_used_at=r[3],
                              revoked_at=r[4]) for r in rows]

        return await self._db.read(select, deadline=self._deadline())

    async def revoke(self, token_id: str) -> TokenInfo:
        revoked_at = now_iso()

        def update(conn: sqlcipher3.Connection) -> TokenInfo | None:
            conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                         (revoked_at, token_id))
            row = conn.execute("SELECT id, name, created_at, last_used_at, revoked_at "
                               "FROM tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                return None
            return TokenInfo(id=row[0], name=row[1], created_at=row[2], last_used_at=row[3],
                             revoked_at=row[4])

        info = await self._write(update)
        if info is None:
            raise TokenNotFound(f"no token with id {token_id!r}")
        return info

    async def verify(self, token: str) -> str | None:
        """The id of the active token, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        active = self._active
        if active is None:
            active = await self._load_active()
        token_id = active.get(_digest(token))
        if token_id is not None:
            await self._touch(token_id)
        return token_id

    async def _write(self, fn: Callable[[sqlcipher3.Connection], T]) -> T:
        """Change tokens; the cache is dropped before, and again once the write has ended
        (even if this caller gave up and the write committed later)."""
        self._forget()
        return await self._db.write(fn, deadline=self._deadline(), on_done=self._forget)

    def _forget(self) -> None:
        self._generation += 1
        self._active = None

    async def _load_active(self) -> dict[str, str]:
        def select(conn: sqlcipher3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT token_sha256, id FROM tokens WHERE revoked_at IS NULL").fetchall()
            return {r[0]: r[1] for r in rows}

        generation = self._generation
        active = await self._db.read(select, deadline=self._deadline())
        if generation == self._generation:
            self._active = active
        return active

    async def _touch(self, token_id: str) -> None:
        """Record last use, at most once a minute per token (a write per request is waste)."""
        now = trio.current_time()
        if now - self._last_used_written.get(token_id, -_LAST_USED_RESOLUTION_S) \
                < _LAST_USED_RESOLUTION_S:
            return
        self._last_used_written[token_id] = now
        stamp = now_iso()

        def update(conn: sqlcipher3.Connection) -> None:
            conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (stamp, token_id))

        try:
            await self._db.write(update, deadline=self._deadline())
        except (BudgetExceeded, StorageError) as exc:  # bookkeeping, not worth failing a request
            log.info("could not record last use of token %s: %s", token_id, exc.code)
