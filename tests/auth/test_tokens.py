"""Admin tokens on a real database: only hashes stored, revocation is immediate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

from fazt.auth import TOKEN_PREFIX, TokenStore
from fazt.errors import BadRequest, TokenNotFound
from tests.core_db import open_core_db


@pytest.fixture
def tokens(tmp_path: Path):
    with open_core_db(tmp_path) as db:
        yield TokenStore(db, op_timeout_s=5)


async def test_create_verify_revoke(tokens: TokenStore) -> None:
    info, secret = await tokens.create("laptop")
    assert secret.startswith(TOKEN_PREFIX)
    assert len(secret) >= len(TOKEN_PREFIX) + 43
    assert await tokens.verify(secret) == info.id
    assert await tokens.verify(secret + "x") is None
    assert await tokens.verify("Bearer " + secret) is None
    revoked = await tokens.revoke(info.id)
    assert revoked.revoked_at is not None
    assert await tokens.verify(secret) is None


async def test_only_the_hash_is_stored(tokens: TokenStore) -> None:
    _, secret = await tokens.create("ci")
    rows = await tokens._db.read(lambda c: c.execute("SELECT * FROM tokens").fetchall(),
                                 deadline=trio.current_time() + 5)
    flat = repr(rows)
    assert secret not in flat
    assert hashlib.sha256(secret.encode()).hexdigest() in flat


async def test_last_used_is_recorded(tokens: TokenStore) -> None:
    info, secret = await tokens.create("x")
    assert (await tokens.list())[0].last_used_at is None
    await tokens.verify(secret)
    assert (await tokens.list())[0].last_used_at is not None
    assert info.id == (await tokens.list())[0].id


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there"])
async def test_bad_names(tokens: TokenStore, name: str) -> None:
    with pytest.raises(BadRequest):
        await tokens.create(name)


async def test_revoke_unknown(tokens: TokenStore) -> None:
    with pytest.raises(TokenNotFound):
        await tokens.revoke("tok_nope")


async def test_two_tokens_are_independent(tokens: TokenStore) -> None:
    a, secret_a = await tokens.create("a")
    _, secret_b = await tokens.create("b")
    await tokens.revoke(a.id)
    assert await tokens.verify(secret_a) is None
    assert await tokens.verify(secret_b) is not None
