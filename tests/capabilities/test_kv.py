"""The kv capability against a real encrypted database: semantics, expiry with a controllable
clock, pagination, quotas and size limits, and the storage phase of the budget."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fazt.budget import Budget, BudgetPolicy
from fazt.capabilities import Call, Capabilities, RawJson, Requested, StorageRequest
from fazt.capabilities._store import prefix_end as _prefix_end
from fazt.capabilities.kv import MAX_KEY_BYTES, KvStore
from fazt.errors import (
    AuthRequired,
    BudgetExceeded,
    CapabilityError,
    CapabilityNotGranted,
    KeyTooLarge,
    QuotaExceeded,
    ValueTooLarge,
)
from fazt.storage import Database, StorageSettings
from tests.capabilities.conftest import APP, OTHER, Clock, Delay, _write, caller


@pytest.fixture
def store(db: Database, clock: Clock) -> KvStore:
    return KvStore(db, clock=clock, max_value_bytes=4096)


def kv_call(store: KvStore, **kwargs: Any) -> Any:
    """A function calling kv methods as JS would: kv("set", "k", 1)."""
    return caller(store.provider(), **kwargs)


async def test_get_set_delete_and_json_values(store: KvStore) -> None:
    kv = kv_call(store)
    assert await kv("get", "missing") is None
    value = {"a": [1, 2.5, "ü", None, True], "nested": {"x": "y"}}
    assert await kv("set", "k", value) is None
    assert await kv("get", "k") == value
    # A stored JSON null is returned as JSON (RawJson b"null"), not as "missing" (None).
    await kv("set", "n", None)
    raw = await store.provider().methods["get"](
        Call(app=APP, budget=Budget.start(BudgetPolicy())), ["n"])
    assert raw == RawJson(b"null")
    assert await kv("delete", "k") is True
    assert await kv("delete", "k") is False
    assert await kv("get", "k") is None


async def test_ttl_expiry_with_a_controllable_clock_and_the_sweep(store: KvStore,
                                                                  clock: Clock) -> None:
    kv = kv_call(store)
    await kv("set", "short", 1, {"ttlMs": 1000})
    await kv("set", "long", 2, {"ttlMs": 5000})
    await kv("set", "forever", 3)
    clock.now += 999
    assert await kv("get", "short") == 1
    clock.now += 1          # expires_at is exclusive: at now == expires_at the key is gone
    assert await kv("get", "short") is None
    page = await kv("list", "")
    assert [item["key"] for item in page["items"]] == ["forever", "long"]
    assert page["items"][1]["expiresAt"] == clock.now - 1000 + 5000
    assert await kv("delete", "short") is False     # expired: it was not there
    await kv("set", "short2", 1, {"ttlMs": 10})
    clock.now += 10
    assert await store.sweep(op_timeout_s=5) == 1   # "short" was deleted by delete() already
    assert await kv("get", "long") == 2
    clock.now += 10_000
    assert await store.sweep(op_timeout_s=5) == 1
    assert [i["key"] for i in (await kv("list"))["items"]] == ["forever"]


async def test_the_sweep_frees_quota(store: KvStore, clock: Clock) -> None:
    kv = kv_call(store, quota=3000)
    await kv("set", "a", "x" * 2000, {"ttlMs": 5})
    with pytest.raises(QuotaExceeded):
        await kv("set", "b", "x" * 2000)
    clock.now += 5
    await store.sweep(op_timeout_s=5)
    await kv("set", "b", "x" * 2000)
    assert await kv("get", "b") == "x" * 2000


async def test_increment_is_atomic_and_typed(store: KvStore, clock: Clock) -> None:
    kv = kv_call(store)
    assert await kv("increment", "n") == 1
    assert await kv("increment", "n", 41) == 42
    assert await kv("increment", "n", -2.5) == 39.5

    async def bump() -> None:
        await kv("increment", "c")

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(bump)
    assert await kv("get", "c") == 100
    await kv("set", "s", "text")
    with pytest.raises(CapabilityError, match="not a number"):
        await kv("increment", "s")
    with pytest.raises(CapabilityError, match="finite number"):
        await kv("increment", "n", "1")
    # A live key keeps its expiry; an expired one starts again from 0 without one.
    await kv("set", "t", 5, {"ttlMs": 100})
    assert await kv("increment", "t") == 6
    page = await kv("list", "t")
    assert page["items"][0]["expiresAt"] == clock.now + 100
    clock.now += 100
    assert await kv("increment", "t") == 1
    assert (await kv("list", "t"))["items"][0]["expiresAt"] is None
    await kv("set", "max", 2**63 - 1)
    with pytest.raises(CapabilityError, match="out of range"):
        await kv("increment", "max")
    assert await kv("get", "max") == 2**63 - 1


async def test_list_is_ordered_by_code_point_and_paginates(store: KvStore) -> None:
    kv = kv_call(store)
    keys = ["a", "a/1", "a/2", "a\U0010ffff", "a\U0010ffffz", "ab", "b", "é", "\ud7ff" "x",
            "\ue000", "z"]
    for key in keys:
        await kv("set", key, key)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await kv("list", "", {"limit": 3, "cursor": cursor})
        seen += [item["key"] for item in page["items"]]
        assert [item["value"] for item in page["items"]] == [item["key"] for item in
                                                            page["items"]]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert pages == 4
    a_keys = [i["key"] for i in (await kv("list", "a"))["items"]]
    assert a_keys == [k for k in sorted(keys, key=lambda k: k.encode()) if k.startswith("a")]
    top = [i["key"] for i in (await kv("list", "a\U0010ffff"))["items"]]
    assert top == ["a\U0010ffff", "a\U0010ffffz"]
    assert (await kv("list", "nothing"))["items"] == []
    with pytest.raises(CapabilityError, match="invalid cursor"):
        await kv("list", "", {"cursor": "%%%"})
    with pytest.raises(CapabilityError, match="limit"):
        await kv("list", "", {"limit": 0})
    with pytest.raises(CapabilityError, match="unknown option"):
        await kv("list", "", {"after": "a"})


@given(st.text(max_size=6))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_prefix_bound_is_above_every_key_with_the_prefix(prefix: str) -> None:
    end = _prefix_end(prefix)
    probe = prefix + "\U0010ffff" * 3
    if end is None:
        assert set(prefix) <= {"\U0010ffff"}
    else:
        assert prefix.encode("utf-8", "surrogatepass") < end.encode("utf-8", "surrogatepass")
        assert probe.encode("utf-8", "surrogatepass") < end.encode("utf-8", "surrogatepass")
        assert not end.startswith(prefix)


async def test_apps_and_users_never_see_each_others_keys(store: KvStore) -> None:
    alpha, beta = kv_call(store), kv_call(store, app=OTHER)
    alice, bob = kv_call(store, user="alice"), kv_call(store, user="bob")
    await alpha("set", "secret", "alpha's")
    await alice("user.set", "secret", "alice's")
    await bob("user.set", "secret", "bob's")
    assert await beta("get", "secret") is None
    assert (await beta("list", ""))["items"] == []
    assert await alpha("get", "secret") == "alpha's"
    assert await alice("user.get", "secret") == "alice's"
    assert await bob("user.get", "secret") == "bob's"
    assert [i["key"] for i in (await alpha("list", ""))["items"]] == ["secret"]
    # The user scope is a column of its own: no key spelling reaches it.
    for key in ("u:alice:secret", "u:alice", "alice:secret", "../secret"):
        assert await alpha("get", key) is None
    with pytest.raises(AuthRequired):
        await alpha("user.get", "secret")
    with pytest.raises(CapabilityError, match="takes 1 argument, got 2"):
        await alpha("get", "secret", OTHER)


async def test_size_limits_and_quota_leave_nothing_half_written(store: KvStore) -> None:
    kv = kv_call(store, quota=10_000)
    with pytest.raises(KeyTooLarge):
        await kv("set", "k" * (MAX_KEY_BYTES + 1), 1)
    with pytest.raises(KeyTooLarge):
        await kv("set", "é" * (MAX_KEY_BYTES // 2 + 1), 1)   # bytes, not characters
    with pytest.raises(ValueTooLarge):
        await kv("set", "big", "x" * 4096)
    with pytest.raises(ValueTooLarge):
        await kv("set", "big", "é" * 2100)                  # 4202 bytes as JSON
    for bad in ("", None, 5, "a\x00b"):
        with pytest.raises(CapabilityError):
            await kv("set", bad, 1)
    for i in range(3):
        await kv("set", f"k{i}", "x" * 3000)
    with pytest.raises(QuotaExceeded, match="quota"):
        await kv("set", "k3", "x" * 3000)
    assert await kv("get", "k3") is None
    # Overwriting with a smaller value is allowed at the quota; growing it is not.
    await kv("set", "k0", "x" * 10)
    await kv("set", "k3", "x" * 2900)
    with pytest.raises(QuotaExceeded):
        await kv("set", "k3", "x" * 4000)
    assert await kv("get", "k3") == "x" * 2900
    with pytest.raises(CapabilityError, match="ttlMs"):
        await kv("set", "t", 1, {"ttlMs": 0})
    with pytest.raises(CapabilityError, match="unknown option"):
        await kv("set", "t", 1, {"ttl": 5})


@given(ops=st.lists(st.tuples(st.sampled_from(["set", "delete", "increment"]),
                              st.sampled_from(["a", "b", "ü", "long" * 20]),
                              st.one_of(st.integers(-5, 5), st.text(max_size=30))),
                    max_size=25))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_usage_always_equals_the_bytes_stored(tmp_path_factory: pytest.TempPathFactory,
                                              ops: list[tuple[str, str, Any]]) -> None:
    path = tmp_path_factory.mktemp("usage")
    db = Database.open(StorageSettings(path=path / "fazt.db", key=secrets.token_bytes(32),
                                       readers=1))
    try:
        trio.run(_check_usage, db, ops)
    finally:
        db.close()


async def _check_usage(db: Database, ops: list[tuple[str, str, Any]]) -> None:
    await _write(db, lambda c: c.execute("INSERT INTO apps VALUES ('alpha', 'now', NULL)"))
    store = KvStore(db, clock=Clock())
    kv = kv_call(store, quota=1_000_000)
    model: dict[str, Any] = {}
    for op, key, value in ops:
        try:
            if op == "set":
                await kv("set", key, value)
                model[key] = value
            elif op == "delete":
                assert await kv("delete", key) is (key in model)
                model.pop(key, None)
            else:
                by = value if isinstance(value, int) else 1
                current = model.get(key, 0)
                if isinstance(current, str):
                    with pytest.raises(CapabilityError):
                        await kv("increment", key, by)
                    continue
                assert await kv("increment", key, by) == current + by
                model[key] = current + by
        except CapabilityError:
            raise
    stored = {item["key"]: item["value"] for item in (await kv("list", "", {"limit": 1000}))
              ["items"]}
    assert stored == model

    def usage(conn: Any) -> tuple[int, int]:
        used = conn.execute("SELECT coalesce(sum(bytes), 0) FROM app_usage").fetchone()[0]
        actual = conn.execute("SELECT coalesce(sum(length(CAST(key AS BLOB)) + "
                              "length(CAST(value AS BLOB))), 0) FROM app_kv").fetchone()[0]
        return used, actual

    used, actual = await db.read(usage, deadline=trio.current_time() + 5)
    assert used == actual


async def test_a_slow_storage_call_ends_at_the_budget_and_the_database_stays_usable(
        store: KvStore, delay: Delay) -> None:
    kv = kv_call(store, request_s=0.3)
    await kv("set", "k", 1)
    delay.seconds = 0.5
    started = trio.current_time()
    with pytest.raises(BudgetExceeded) as info:
        await kv("get", "k")
    assert info.value.code == "storage_timeout"
    assert trio.current_time() - started < 0.3 + 0.1
    delay.seconds = 0
    assert await kv_call(store)("get", "k") == 1


async def test_a_call_with_no_time_left_fails_before_it_starts(store: KvStore,
                                                                delay: Delay) -> None:
    methods = store.provider().methods
    budget = Budget.start(BudgetPolicy(request_s=0.2, respond_reserve_s=0.15))
    await trio.sleep(0.06)          # less than min_op_s is left before the respond reserve
    delay.seconds = 1.0             # a call that reached the database would take a second
    started = trio.current_time()
    with pytest.raises(BudgetExceeded):
        await methods["get"](Call(app=APP, budget=budget), ["k"])
    assert trio.current_time() - started < 0.05


async def test_the_grant_checks_the_manifest_and_the_policy(store: KvStore) -> None:
    caps = Capabilities([store.provider()])
    requested = Requested({"kv": StorageRequest(quota_mb=7)})
    grant = caps.grant(APP, requested)
    assert grant.capabilities == {"kv": 7 * 2**20}
    assert "user.get" in caps.worker_caps(grant)["kv"]
    host = caps.host_for(grant)
    budget = Budget.start(BudgetPolicy())
    await host("kv", "set", ["k", 1], budget)
    assert await host("kv", "get", ["k"], budget) == RawJson(b"1")
    with pytest.raises(CapabilityError, match="no method"):
        await host("kv", "drop", [], budget)
    bare = caps.host_for(caps.grant(APP, None))
    with pytest.raises(CapabilityNotGranted, match=r"\"kv\": \{\}"):
        await bare("kv", "get", ["k"], budget)
    assert caps.grant(APP, Requested({"kv": StorageRequest(quota_mb=5000)})).capabilities[
        "kv"] == 1024 * 2**20
