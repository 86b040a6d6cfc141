"""Storage chaos against a real `fazt run`: injected delays, hangs and failures through the admin
chaos endpoints, an outside process holding the database's write lock, and afterwards the
database itself - every write the server acknowledged is in it and it passes integrity_check.

Apps drive kv through one handler: ``POST /api/run`` with ``{ops, key, value}`` runs the listed
operations in order (``set`` the request's own key, ``get`` it back, ``incr`` a shared counter,
``read`` a fixed key), and lets any error escape, so a refused call answers with its own status
and code. Every request is timed on the client: nothing may outlive its app's request budget by
more than ``SLACK_S``. Requests go to 127.0.0.1 with ``Host: <app>.localhost``; there are no
sleeps (the lock holder's "locked" line is awaited, as a line on a pipe).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fazt.storage._connect import open_connection
from fazt.storage._keys import resolve_key
from tests.harness import REPO, FaztServer, clean_env, deploy, free_port, start_server

pytestmark = pytest.mark.chaos

SLACK_S = 0.1             # what a response may take beyond its request budget
DB_NAME = "fazt.db"

KV_JS = """\
module.exports = async function (request, caps) {
  const kv = caps.kv;
  const b = request.body || {};
  const out = {};
  for (const op of b.ops || []) {
    if (op === 'set') { await kv.set(b.key, b.value); out.set = b.key; }
    else if (op === 'get') { out.got = await kv.get(b.key); }
    else if (op === 'incr') { out.count = await kv.increment('count'); }
    else if (op === 'read') { out.read = (await kv.get('probe')) ?? null; }
    else return { status: 400, json: { error: 'unknown op ' + op } };
  }
  return { json: out };
};
"""


def kv_app(request_ms: int) -> dict[str, str]:
    manifest = {"capabilities": {"kv": {}}, "limits": {"request_ms": request_ms}}
    return {"manifest.json": json.dumps(manifest), "api/main.js": KV_JS}


@dataclass
class Outcome:
    key: str
    status: int
    body: dict[str, Any]
    elapsed_s: float

    @property
    def code(self) -> str | None:
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None


@dataclass
class Ledger:
    """What the server acknowledged: (app, key) -> value of each 200 `set`, and each app's
    acknowledged counter values; and the keys of writes refused before they ran."""

    values: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    never_ran: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Run:
    server: FaztServer
    budgets_s: dict[str, float]
    ledger: Ledger = field(default_factory=Ledger)
    _seq: Iterator[int] = field(default_factory=itertools.count)

    def request(self, app: str, ops: list[str], *, client: httpx.Client | None = None) -> Outcome:
        """One timed request to ``app``; a 200 `set`/`incr` goes into the ledger."""
        key = f"{app}-{next(self._seq)}"
        value = f"value of {key}"
        payload = {"ops": ops, "key": key, "value": value}
        own = client is None
        client = client or self.server.app(app)
        try:
            started = time.monotonic()
            r = client.post("/api/run", json=payload)
            elapsed = time.monotonic() - started
        finally:
            if own:
                client.close()
        body = r.json()
        if r.status_code == 200:
            if "set" in ops:
                assert body["set"] == key, body
                self.ledger.values[(app, key)] = value
            if "get" in ops:
                assert body["got"] == value, body
            if "incr" in ops:
                self.ledger.counts.setdefault(app, []).append(body["count"])
        return Outcome(key, r.status_code, body, elapsed)

    def within_budget(self, app: str, outcome: Outcome) -> None:
        limit = self.budgets_s[app] + SLACK_S
        assert outcome.elapsed_s <= limit, \
            f"{app}: a response took {outcome.elapsed_s:.3f} s, over {limit:.3f} s ({outcome})"

    def warm(self, app: str, *, burst: int = 1) -> None:
        """Bring up the app's JS workers (spawning one can take longer than a small budget):
        bounded rounds of `burst` concurrent requests until a whole round succeeds."""
        for _ in range(10):
            if all(o.status == 200 for o in self.concurrently(app, ["set"], burst)):
                return
        pytest.fail(f"{app} never answered a whole round of {burst} requests")

    def concurrently(self, app: str, ops: list[str], n: int) -> list[Outcome]:
        def one(_: int) -> Outcome:
            with self.server.app(app) as client:
                return self.request(app, ops, client=client)

        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(one, range(n)))


# -- the admin chaos endpoints ------------------------------------------------------------------

def put_fault(server: FaztServer, app: str, fault: Any) -> httpx.Response:
    with server.admin() as admin:
        return admin.put(f"/api/apps/{app}/chaos", json=fault)


def set_fault(server: FaztServer, app: str, **fault: Any) -> dict[str, Any]:
    r = put_fault(server, app, fault)
    assert r.status_code == 200, r.text
    return r.json()


def get_chaos(server: FaztServer, app: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.get(f"/api/apps/{app}/chaos")
    assert r.status_code == 200, r.text
    return r.json()


def clear_fault(server: FaztServer, app: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.delete(f"/api/apps/{app}/chaos")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fault"] is None
    return body


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


# -- the database, read directly ----------------------------------------------------------------

def open_db(data_dir: Path) -> Any:
    db_path = data_dir / DB_NAME
    key = resolve_key(data_dir=data_dir, env_key_hex=None, db_path=db_path)
    return open_connection(db_path, key, busy_timeout_ms=1000, readonly=True)


def check_database(data_dir: Path, ledger: Ledger) -> None:
    """The server has stopped: the file passes integrity_check and holds every acknowledged
    write; writes refused before they ran left nothing."""
    conn = open_db(data_dir)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {(app, key): json.loads(value) for app, key, value in conn.execute(
            "SELECT app, key, value FROM app_kv WHERE scope = ''")}
    finally:
        conn.close()
    lost = {k: v for k, v in ledger.values.items() if stored.get(k) != v}
    assert not lost, f"{len(lost)} acknowledged writes missing or wrong: {sorted(lost)[:5]}"
    for app, counts in ledger.counts.items():
        assert len(set(counts)) == len(counts), f"{app}: a counter value acknowledged twice"
        assert stored.get((app, "count"), 0) >= max(counts), (app, stored.get((app, "count")))
    ran = ledger.never_ran & set(stored)
    assert not ran, f"writes refused by an injected failure were stored: {sorted(ran)[:5]}"


# -- the chaos server ---------------------------------------------------------------------------

PATIENT, HASTY, HANGING, FLAKY, TARGET, PROBED = \
    "patient", "hasty", "hanging", "flaky", "target", "probed"
BUDGETS_MS = {PATIENT: 2000, HASTY: 300, HANGING: 1000, FLAKY: 2000, TARGET: 2000, PROBED: 2000}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    srv = start_server(tmp_path_factory.mktemp("chaos") / "data", env={"FAZT_CHAOS": "1"})
    try:
        for app, ms in BUDGETS_MS.items():
            deploy(srv, app, kv_app(ms))
        out = Run(srv, {app: ms / 1000 for app, ms in BUDGETS_MS.items()})
        for app in BUDGETS_MS:
            out.warm(app)
        yield out
    finally:
        srv.stop()


def test_delay_within_budget_succeeds_and_over_it_times_out(run: Run) -> None:
    for app in (PATIENT, HASTY):
        fault = set_fault(run.server, app, kind="delay", delay_ms=200)
        assert fault["fault"] == {"kind": "delay", "delay_ms": 200, "error": "storage_error",
                                  "probability": 1.0, "ops": "both"}
    try:
        # 2000 ms: three storage calls of 200+ ms each fit
        for _ in range(5):
            outcome = run.request(PATIENT, ["set", "get", "incr"])
            assert outcome.status == 200, outcome
            assert outcome.elapsed_s >= 0.6, outcome        # the delays did happen
            run.within_budget(PATIENT, outcome)
        # 300 ms: the storage phase ends at 300 - 100 (respond) - 50 (hand-off) = 150 ms
        for _ in range(5):
            outcome = run.request(HASTY, ["set"])
            assert (outcome.status, outcome.code) == (504, "storage_timeout"), outcome
            run.within_budget(HASTY, outcome)
    finally:
        for app in (PATIENT, HASTY):
            clear_fault(run.server, app)
    # the faults are gone: the small budget is enough again
    outcome = run.request(HASTY, ["set", "get"])
    assert outcome.status == 200, outcome
    run.within_budget(HASTY, outcome)


def test_hang_never_outlives_the_budget_and_the_app_recovers(run: Run) -> None:
    run.warm(HANGING, burst=20)              # both of the app's workers up, before measuring
    set_fault(run.server, HANGING, kind="hang")
    try:
        hung = run.concurrently(HANGING, ["set"], 20)
    finally:
        clear_fault(run.server, HANGING)
    for outcome in hung:
        assert (outcome.status, outcome.code) == (504, "storage_timeout"), outcome
        assert outcome.elapsed_s >= 0.8, outcome    # it hung until its storage phase ended
        run.within_budget(HANGING, outcome)
    # no fault: success is back to 100 %, concurrently and one by one
    recovered = run.concurrently(HANGING, ["set", "get", "incr"], 20)
    recovered += [run.request(HANGING, ["set", "get"]) for _ in range(5)]
    assert [o.status for o in recovered] == [200] * len(recovered), recovered
    for outcome in recovered:
        run.within_budget(HANGING, outcome)


def test_probabilistic_failures_add_up_with_the_injected_count(run: Run) -> None:
    before = get_chaos(run.server, FLAKY)["injected"]
    set_fault(run.server, FLAKY, kind="fail", error="storage_busy", probability=0.5)
    try:
        # one storage call per request, one request at a time: each injection fails one request
        outcomes = [run.request(FLAKY, ["set"]) for _ in range(40)]
        state = get_chaos(run.server, FLAKY)
    finally:
        clear_fault(run.server, FLAKY)
    ok = [o for o in outcomes if o.status == 200]
    busy = [o for o in outcomes if (o.status, o.code) == (503, "storage_busy")]
    assert len(ok) + len(busy) == 40, [o for o in outcomes if o not in ok and o not in busy]
    assert ok and busy, (len(ok), len(busy))     # all or none of 40 at p=0.5: about 2e-12
    assert state["fault"]["probability"] == 0.5
    assert state["injected"] - before == len(busy)
    for outcome in outcomes:
        run.within_budget(FLAKY, outcome)
    # an injected failure fails the job before it runs: those keys must never be stored
    run.ledger.never_ran |= {(FLAKY, o.key) for o in busy}


@pytest.mark.parametrize(("error", "status"), [("storage_error", 500), ("storage_busy", 503),
                                               ("storage_full", 507)])
def test_each_injected_error_reaches_the_client(run: Run, error: str, status: int) -> None:
    set_fault(run.server, TARGET, kind="fail", error=error)
    try:
        outcome = run.request(TARGET, ["set"])
    finally:
        clear_fault(run.server, TARGET)
    assert (outcome.status, outcome.code) == (status, error), outcome
    assert run.request(TARGET, ["set"]).status == 200


def test_ops_confine_a_fault_to_reads_or_writes(run: Run) -> None:
    set_fault(run.server, TARGET, kind="fail", error="storage_full", ops="read")
    try:
        assert run.request(TARGET, ["set", "incr"]).status == 200     # writes only
        outcome = run.request(TARGET, ["read"])
        assert (outcome.status, outcome.code) == (507, "storage_full"), outcome
        set_fault(run.server, TARGET, kind="fail", error="storage_full", ops="write")
        assert run.request(TARGET, ["read"]).status == 200            # reads only
        outcome = run.request(TARGET, ["set"])
        assert (outcome.status, outcome.code) == (507, "storage_full"), outcome
    finally:
        clear_fault(run.server, TARGET)


def test_a_fault_stays_with_its_app(run: Run) -> None:
    set_fault(run.server, TARGET, kind="fail", error="storage_error")
    try:
        assert run.request(TARGET, ["read"]).status == 500
        assert run.request(PROBED, ["set", "get", "incr"]).status == 200
        assert get_chaos(run.server, PROBED)["fault"] is None
    finally:
        clear_fault(run.server, TARGET)


BAD_FAULTS = [
    {"kind": "explode"},
    {"delay_ms": 100},
    {"kind": "delay"},                              # delay_ms missing: 0
    {"kind": "delay", "delay_ms": 0},
    {"kind": "delay", "delay_ms": -5},
    {"kind": "delay", "delay_ms": 60_001},
    {"kind": "delay", "delay_ms": 1.5},
    {"kind": "delay", "delay_ms": "100"},
    {"kind": "delay", "delay_ms": True},
    {"kind": "fail", "probability": 0},
    {"kind": "fail", "probability": 2},
    {"kind": "fail", "probability": -0.5},
    {"kind": "fail", "probability": True},
    {"kind": "fail", "probability": "0.5"},
    {"kind": "fail", "error": "disk_on_fire"},
    {"kind": "fail", "error": "storage_timeout"},
    {"kind": "fail", "ops": "sometimes"},
    {"kind": "fail", "colour": "red"},
    {"kind": "hang", "app": "patient"},
]


def test_bad_faults_are_refused_and_keep_the_rule_in_place(run: Run) -> None:
    rule = {"kind": "fail", "delay_ms": 0, "error": "storage_full", "probability": 1.0,
            "ops": "write"}
    assert set_fault(run.server, TARGET, **rule)["fault"] == rule
    try:
        for bad in BAD_FAULTS:
            r = put_fault(run.server, TARGET, bad)
            assert_error(r, 400, "bad_request")
            assert get_chaos(run.server, TARGET)["fault"] == rule, bad
        for body in ([], "hang", 3, [{"kind": "hang"}]):
            r = put_fault(run.server, TARGET, body)
            assert r.status_code == 400 and r.json()["error"]["code"] in (
                "bad_request", "invalid_json"), (body, r.text)
        with run.server.admin() as admin:
            r = admin.put(f"/api/apps/{TARGET}/chaos", content=b"{",
                          headers={"content-type": "application/json"})
            assert_error(r, 400, "invalid_json")
            # an app that does not exist: 404 for every method, and no rule is made for it
            assert_error(admin.put("/api/apps/nosuchapp/chaos", json={"kind": "hang"}),
                         404, "app_not_found")
            assert_error(admin.get("/api/apps/nosuchapp/chaos"), 404, "app_not_found")
            assert_error(admin.delete("/api/apps/nosuchapp/chaos"), 404, "app_not_found")
        deploy(run.server, "nosuchapp", kv_app(2000))
        assert get_chaos(run.server, "nosuchapp")["fault"] is None
        # not an admin: refused, and the rule is untouched
        with run.server.admin(token="") as anonymous:
            assert_error(anonymous.put(f"/api/apps/{TARGET}/chaos", json={"kind": "hang"}),
                         401, "unauthorized")
            assert_error(anonymous.delete(f"/api/apps/{TARGET}/chaos"), 401, "unauthorized")
        assert get_chaos(run.server, TARGET)["fault"] == rule
        # ...and it still acts
        outcome = run.request(TARGET, ["set"])
        assert (outcome.status, outcome.code) == (507, "storage_full"), outcome
    finally:
        clear_fault(run.server, TARGET)
    assert run.request(TARGET, ["set"]).status == 200


def test_acknowledged_writes_survive_and_the_database_is_sound(run: Run) -> None:
    # a last round under a fault of its own, so this test checks something when run alone
    set_fault(run.server, PROBED, kind="fail", error="storage_busy", probability=0.5,
              ops="write")
    outcomes = [run.request(PROBED, ["set", "incr"]) for _ in range(10)]
    assert {o.status for o in outcomes} <= {200, 503}, outcomes
    assert run.ledger.values, "no write was acknowledged"
    assert run.server.stop() == 0, run.server.output()
    check_database(run.server.data_dir, run.ledger)


# -- an outside process holds the write lock ----------------------------------------------------

BUSY_TIMEOUT_MS = 1000
REQUEST_BUDGET_S = 3.0
LOCKED_APP = "locked"
HOLD_S = 10.0

# Opens the database with the key from the data dir, takes the write lock (BEGIN IMMEDIATE),
# says "locked", and commits when its stdin closes, or after HOLD_S at the latest.
LOCK_HOLDER = textwrap.dedent("""\
    import select, sys
    from pathlib import Path
    from fazt.storage._connect import open_connection
    from fazt.storage._keys import resolve_key

    data_dir = Path(sys.argv[1])
    db_path = data_dir / "fazt.db"
    key = resolve_key(data_dir=data_dir, env_key_hex=None, db_path=db_path)
    conn = open_connection(db_path, key, busy_timeout_ms=5000)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    select.select([sys.stdin], [], [], float(sys.argv[2]))
    conn.execute("COMMIT")
    conn.close()
    print("released", flush=True)
""")


@contextlib.contextmanager
def write_lock_held(data_dir: Path) -> Iterator[float]:
    """Another process holds the database's write lock for the body of the ``with``; yields
    when it took the lock (time.monotonic()). On exit the lock is let go, and must have been
    held throughout."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(data_dir), str(HOLD_S)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env=clean_env())
    assert holder.stdin and holder.stdout and holder.stderr
    try:
        line = holder.stdout.readline()      # bounded: EOF if it dies, HOLD_S at most
        assert line == "locked\n", (line, holder.stderr.read())
        locked_at = time.monotonic()
        yield locked_at
        held_s = time.monotonic() - locked_at
        assert held_s < HOLD_S, f"the holder may have let go during the test ({held_s:.1f} s)"
    finally:
        holder.stdin.close()                  # let go
        try:
            returncode = holder.wait(15)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
            raise
        finally:
            released, errors = holder.stdout.read(), holder.stderr.read()
            holder.stdout.close()
            holder.stderr.close()
    assert (returncode, released) == (0, "released\n"), errors


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A server without chaos, with a short busy timeout under a longer request budget."""
    srv = start_server(tmp_path_factory.mktemp("lock") / "data", env={
        "FAZT_STORAGE_BUSY_TIMEOUT_MS": str(BUSY_TIMEOUT_MS),
        "FAZT_BUDGET_REQUEST_S": str(REQUEST_BUDGET_S)})
    try:
        deploy(srv, LOCKED_APP, kv_app(600_000))        # the server's 3 s is the lower budget
        out = Run(srv, {LOCKED_APP: REQUEST_BUDGET_S})
        out.warm(LOCKED_APP, burst=3)
        yield out
    finally:
        srv.stop()


def test_chaos_endpoints_are_forbidden_without_chaos(plain: Run) -> None:
    with plain.server.admin() as admin:
        for method in ("GET", "PUT", "DELETE"):
            kwargs = {"json": {"kind": "hang"}} if method == "PUT" else {}
            r = admin.request(method, f"/api/apps/{LOCKED_APP}/chaos", **kwargs)
            assert_error(r, 403, "forbidden")
            assert "chaos" in r.json()["error"]["message"]
    assert plain.request(LOCKED_APP, ["set"]).status == 200


def test_an_outside_write_lock_gives_storage_busy_and_reads_go_on(plain: Run) -> None:
    with plain.server.app(LOCKED_APP) as probe:
        r = probe.post("/api/run", json={"ops": ["set"], "key": "probe", "value": "seen"})
    assert r.status_code == 200, r.text
    plain.ledger.values[(LOCKED_APP, "probe")] = "seen"

    with write_lock_held(plain.server.data_dir):
        # one write at a time, then three at once while reads go on: busy, never a hang
        busy = [plain.request(LOCKED_APP, ["set"]) for _ in range(2)]
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(plain.concurrently, LOCKED_APP, ["set", "incr"], 3)
            reads = [plain.request(LOCKED_APP, ["read"]) for _ in range(5)]
            busy += waiting.result()

    for outcome in busy:
        assert (outcome.status, outcome.code) == (503, "storage_busy"), outcome
        assert outcome.elapsed_s >= BUSY_TIMEOUT_MS / 1000 * 0.9, outcome   # it did wait
        plain.within_budget(LOCKED_APP, outcome)
    for outcome in reads:
        assert outcome.status == 200 and outcome.body["read"] == "seen", outcome
        assert outcome.elapsed_s < BUSY_TIMEOUT_MS / 1000 / 2, outcome     # not behind it

    # the lock is gone: writes go through again
    after = [plain.request(LOCKED_APP, ["set", "get", "incr"]) for _ in range(5)]
    assert [o.status for o in after] == [200] * 5, after
    assert plain.server.stop() == 0, plain.server.output()
    check_database(plain.server.data_dir, plain.ledger)


def test_with_default_settings_an_outside_lock_gives_storage_busy(tmp_path: Path) -> None:
    """docs/reference/settings.md: a statement waits `storage_busy_timeout_ms` (default 3000)
    for another process's lock "before failing with storage_busy (503)" - with the default
    request budget (10 s), a write under a held lock must say storage_busy, not time out."""
    srv = start_server(tmp_path / "data")
    try:
        deploy(srv, LOCKED_APP, kv_app(600_000))
        run = Run(srv, {LOCKED_APP: 10.0})
        run.warm(LOCKED_APP)
        with write_lock_held(srv.data_dir):
            outcome = run.request(LOCKED_APP, ["set"])
        assert (outcome.status, outcome.code) == (503, "storage_busy"), outcome
        run.within_budget(LOCKED_APP, outcome)
    finally:
        srv.stop()


# -- chaos is a testing hook: production refuses it ---------------------------------------------

def test_production_refuses_to_start_with_chaos(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(FAZT_PRODUCTION="1", FAZT_CHAOS="1")
    out = subprocess.run(
        [sys.executable, "-m", "fazt", "run", "--port", str(free_port()), "--data-dir",
         str(data)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, (out.stdout, out.stderr)
    message = out.stdout + out.stderr
    assert "chaos" in message and "production" in message, message
    assert "Traceback" not in message, message
    assert not (data / DB_NAME).exists()       # refused before it touched anything
