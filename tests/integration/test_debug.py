"""GET /api/_debug/runtime and `fazt debug runtime` against a real `fazt run`: every
documented field is there, and the view shows an in-flight slow request, a killed worker and a
timeout while they happen."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import FaztServer, call, deploy

pytestmark = pytest.mark.integration

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "api.md"
PHASES = ("js", "storage", "net", "respond")

# /api/spin?ms=N keeps its worker busy for N ms; /api/forever never ends
SPIN_JS = """\
module.exports = async function (request) {
  if (request.path === '/api/forever') { for (;;) {} }
  const end = Date.now() + Number(request.query.ms || 0);
  while (Date.now() < end) {}
  return 'spun';
};
"""


def runtime(server: FaztServer) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.get("/api/_debug/runtime")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def wait_for_view(server: FaztServer, condition: Callable[[dict[str, Any]], bool],
                  timeout_s: float = 15) -> dict[str, Any]:
    """The first runtime view that meets ``condition`` (polled, bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = runtime(server)
        if condition(view):
            return view
        time.sleep(0.02)      # polling the server's state, not waiting for it to settle
    pytest.fail("the runtime view never showed it")


class Background:
    """One request to an app, made in a thread while the test looks at the server."""

    def __init__(self, server: FaztServer, app: str, path: str) -> None:
        self.response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(server, app, path))
        self._thread.start()

    def _run(self, server: FaztServer, app: str, path: str) -> None:
        self.response = call(server, app, "GET", path,
                             headers={"x-request-id": "debug-test-request"})

    def join(self) -> httpx.Response:
        self._thread.join(60)
        assert self.response is not None
        return self.response


@pytest.fixture(scope="module")
def spin(server: FaztServer) -> Iterator[str]:
    deploy(server, "spin", {"api/main.js": SPIN_JS,
                            "manifest.json": json.dumps({"limits": {"request_ms": 8000}})})
    deploy(server, "forever", {"api/main.js": SPIN_JS,
                               "manifest.json": json.dumps({"limits": {"request_ms": 1500}})})
    yield "spin"


def documented_fields() -> list[str]:
    section = API_DOC.read_text().split("## `GET /api/_debug/runtime`")[1].split("\n## ")[0]
    return re.findall(r"^\| `([a-z_<>.\[\]]+)` \|", section, re.M)


def lookup(view: Any, path: str) -> list[Any]:
    """The values at a documented path (``<app>``, ``<phase>`` and ``[]`` fan out)."""
    values = [view]
    for part in path.split("."):
        many = part.endswith("[]")
        name = part[:-2] if many else part
        found = []
        for value in values:
            if not isinstance(value, dict):
                continue
            keys = list(value) if name in ("<app>", "<phase>") else [name]
            for key in keys:
                if key in value:
                    item = value[key]
                    found.extend(item if many and isinstance(item, list) else [item])
        values = found
    return values


def test_every_documented_field_is_there(server: FaztServer, spin: str) -> None:
    fields = documented_fields()
    assert len(fields) >= 50 and "requests.in_flight[].budget_left_ms" in fields
    slow = Background(server, spin, "/api/x?ms=2500")
    # in flight, and running in a worker (not still waiting for one to start)
    view = wait_for_view(server, lambda v: any(r["app"] == spin
                                               for r in v["requests"]["in_flight"])
                         and v["sandbox"]["pools"].get(spin, {}).get("busy") == 1)
    missing = [f for f in fields if not lookup(view, f)]
    assert missing == []
    assert set(view["budget"]) == set(PHASES)
    [request] = [r for r in view["requests"]["in_flight"] if r["app"] == spin]
    assert (request["method"], request["path"], request["request_id"]) == \
        ("GET", "/api/x", "debug-test-request")
    assert 0 < request["budget_left_ms"] < 8000 and request["age_ms"] >= 0
    pool = view["sandbox"]["pools"][spin]
    assert pool["busy"] == 1 and pool["in_flight"] == 1
    assert slow.join().status_code == 200
    after = runtime(server)
    assert all(r["request_id"] != "debug-test-request" for r in after["requests"]["in_flight"])
    assert after["requests"]["served"] > view["requests"]["served"]
    assert after["budget"]["js"]["count"] > 0 and after["budget"]["js"]["p99_ms"] > 0


def test_a_killed_worker_shows(server: FaztServer, spin: str) -> None:
    before = runtime(server)["sandbox"]["counters"]["crashes"]
    slow = Background(server, spin, "/api/x?ms=5000")
    view = wait_for_view(server, lambda v: v["sandbox"]["pools"].get(spin, {}).get("busy"))
    [pid] = [w["pid"] for w in view["sandbox"]["pools"][spin]["workers"] if w["in_flight"]]
    os.kill(pid, signal.SIGKILL)
    response = slow.join()
    assert response.status_code == 502 and response.json()["error"]["code"] == "js_crashed"
    after = wait_for_view(server, lambda v: v["sandbox"]["counters"]["crashes"] > before)
    assert pid not in [w["pid"] for w in after["sandbox"]["pools"][spin]["workers"]]


def test_a_timeout_shows(server: FaztServer, spin: str) -> None:
    assert call(server, "forever", "GET", "/api/x").status_code == 200    # a worker is up
    counters = runtime(server)["sandbox"]["counters"]
    r = call(server, "forever", "GET", "/api/forever")
    assert r.status_code == 504 and r.json()["error"]["code"] == "js_timeout"
    wait_for_view(server, lambda v: v["sandbox"]["counters"]["timeouts"] > counters["timeouts"])


def test_the_cli_renders_it(server: FaztServer, spin: str) -> None:
    assert call(server, spin, "GET", "/api/x").status_code == 200
    out = server.cli("debug", "runtime")
    assert out.returncode == 0, out.stderr
    for heading in ("pools", "workers", "requests in flight", "budget", "storage:", "egress:"):
        assert heading in out.stdout, heading
    assert "spin" in out.stdout
    as_json = json.loads(server.cli("debug", "runtime", "--json").stdout)
    assert set(as_json) == {"process", "sandbox", "requests", "budget", "storage", "egress"}


def test_the_view_needs_the_admin_token(server: FaztServer) -> None:
    with server.admin(token="") as client:
        assert client.get("/api/_debug/runtime").status_code == 401
