"""Capabilities against a real `fazt run`: kv through HTTP, isolation between apps, size and
quota limits, the operator's policy, env settings, `fazt app validate`, and app removal.

Handlers drive kv through a small JSON protocol (``POST /api/op`` with ``{op, args}``), so one
app answers every kv question a test asks. Requests go to 127.0.0.1 with
``Host: <app>.localhost``; every wait is a bounded poll on a condition.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import FaztServer, call, deploy, start_server

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
MAX_KEY_BYTES = 1024
MAX_ENV_VALUE_BYTES = 4096

# One handler for every kv test. `/api/op` runs one kv method (a dotted name: "user.get") and
# answers what came back, telling undefined from null; with "uncaught" the handler lets a
# refused call's error escape. `/api/batch` runs several in order and stops at the first error.
KV_JS = """\
function describe(result) {
  return { ok: true, undefined: result === undefined, null: result === null,
           result: result === undefined ? '<undefined>' : result };
}
function method(kv, op) {
  return op.split('.').reduce(function (o, k) { return o[k]; }, kv);
}
module.exports = async function (request, caps) {
  const kv = caps.kv;
  const body = request.body || {};
  switch (request.path) {
    case '/api/ok': return 'ok';
    case '/api/caps':
      return { json: { kv: typeof kv, env: typeof caps.env, keys: Object.keys(caps).sort(),
                       methods: kv ? Object.keys(kv).sort() : null,
                       user: kv && kv.user ? Object.keys(kv.user).sort() : null } };
    case '/api/count': return { json: { count: await kv.increment('count') } };
    case '/api/big': {
      // a value of `size` characters ("x" repeated: its JSON text is size + 2 bytes)
      const value = 'x'.repeat(body.size);
      if (body.uncaught) { await kv.set(body.key, value); return { json: { stored: true } }; }
      try { await kv.set(body.key, value); return { json: { stored: true } }; }
      catch (e) { return { json: { stored: false, code: e.code, message: e.message } }; }
    }
    case '/api/bigkey': {
      const key = body.char.repeat(body.count);
      const args = body.op === 'set' ? [key, 1] : [key];
      try { await method(kv, body.op).apply(null, args); return { json: { ok: true } }; }
      catch (e) { return { json: { ok: false, code: e.code, message: e.message } }; }
    }
    case '/api/nonfinite': {
      // NaN and Infinity have no JSON form: the handler makes them from text
      try { return { json: { ok: true, result: await kv.increment(body.key, Number(body.by)) } }; }
      catch (e) { return { json: { ok: false, code: e.code, message: e.message } }; }
    }
    case '/api/len': {
      const v = await kv.get(body.key);
      return { json: { length: typeof v === 'string' ? v.length : null,
                       missing: v === undefined } };
    }
    case '/api/op': {
      const fn = method(kv, body.op);
      if (body.uncaught) return { json: describe(await fn.apply(null, body.args)) };
      try { return { json: describe(await fn.apply(null, body.args)) }; }
      catch (e) { return { json: { ok: false, code: e.code, message: e.message, name: e.name } }; }
    }
    case '/api/batch': {
      const out = [];
      for (const [op, args] of body.ops) {
        try { out.push(describe(await method(kv, op).apply(null, args))); }
        catch (e) { out.push({ ok: false, code: e.code, message: e.message }); break; }
      }
      return { json: out };
    }
  }
  return { status: 404, body: 'no route' };
};
"""


def manifest(**capabilities: Any) -> str:
    return json.dumps({"capabilities": capabilities})


def kv_app(quota_mb: int | None = None, *, memory_mb: int | None = None,
           **extra: Any) -> dict[str, str]:
    kv: dict[str, Any] = {} if quota_mb is None else {"quota_mb": quota_mb}
    data: dict[str, Any] = {"capabilities": {"kv": kv, **extra}}
    if memory_mb is not None:
        data["limits"] = {"memory_mb": memory_mb}
    return {"manifest.json": json.dumps(data), "api/main.js": KV_JS}


# Apps that move values of hundreds of KB ask for more JS memory: with the default 128 MB a
# worker that builds ~1 MB strings runs out of memory every third or fourth request (see
# test_repeated_large_values_fit_in_a_worker).
BIG_MEMORY_MB = 512


# -- helpers ------------------------------------------------------------------------------------

def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code, error
    return error


def op(server: FaztServer, app: str, name: str, *args: Any) -> dict[str, Any]:
    """Run one kv method in the app's handler; the error, if any, is caught there."""
    r = call(server, app, "POST", "/api/op", json={"op": name, "args": list(args)})
    assert r.status_code == 200, r.text
    return r.json()


def ok(server: FaztServer, app: str, name: str, *args: Any) -> Any:
    out = op(server, app, name, *args)
    assert out["ok"], out
    return None if out["undefined"] else out["result"]


def refused(server: FaztServer, app: str, name: str, *args: Any) -> dict[str, Any]:
    out = op(server, app, name, *args)
    assert not out["ok"], out
    return out


def uncaught(server: FaztServer, app: str, name: str, *args: Any) -> httpx.Response:
    return call(server, app, "POST", "/api/op",
                json={"op": name, "args": list(args), "uncaught": True})


def batch(server: FaztServer, app: str, ops: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    r = call(server, app, "POST", "/api/batch", json={"ops": [list(o) for o in ops]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert all(item["ok"] for item in out) and len(out) == len(ops), out
    return out


def list_all(server: FaztServer, app: str, prefix: str, *, limit: int) -> list[list[str]]:
    """Every page of kv.list(prefix), as the keys of each page."""
    pages: list[list[str]] = []
    cursor = None
    for _ in range(100):
        options: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            options["cursor"] = cursor
        page = ok(server, app, "list", prefix, options)
        pages.append([item["key"] for item in page["items"]])
        cursor = page["cursor"]
        if cursor is None:
            return pages
    pytest.fail("kv.list did not end within 100 pages")


def caps_of(server: FaztServer, app: str) -> dict[str, Any]:
    r = call(server, app, "GET", "/api/caps")
    assert r.status_code == 200, r.text
    return r.json()


def policy(server: FaztServer, app: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.get(f"/api/apps/{app}/policy")
    assert r.status_code == 200, r.text
    return r.json()["capabilities"]


def post_policy(server: FaztServer, app: str, **kwargs: Any) -> httpx.Response:
    with server.admin() as admin:
        return admin.post(f"/api/apps/{app}/policy", **kwargs)


def cli_ok(server: FaztServer, *args: str) -> str:
    out = server.cli(*args)
    assert out.returncode == 0, (out.stdout, out.stderr)
    return out.stdout


def cli_fails(server: FaztServer, *args: str) -> str:
    out = server.cli(*args)
    assert out.returncode != 0, (out.stdout, out.stderr)
    return out.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztServer]:
    # A fast sweep of expired keys, so that a test can see their bytes freed.
    srv = start_server(tmp_path_factory.mktemp("caps") / "data",
                       env={"FAZT_KV_SWEEP_INTERVAL_S": "0.1"})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kv(server: FaztServer) -> str:
    deploy(server, "kv", kv_app())
    return "kv"


# -- 1. kv through HTTP -------------------------------------------------------------------------

def test_counter_handler(server: FaztServer, kv: str) -> None:
    counts = [call(server, kv, "GET", "/api/count").json()["count"] for _ in range(3)]
    assert counts == [1, 2, 3]
    assert ok(server, kv, "get", "count") == 3


def test_caps_object_has_the_kv_methods(server: FaztServer, kv: str) -> None:
    seen = caps_of(server, kv)
    assert seen["kv"] == "object"
    # no env: the manifest lists none
    assert seen["keys"] == ["blobs", "budget", "docs", "kv", "log", "net"]
    assert seen["env"] == "undefined"
    assert seen["methods"] == ["delete", "get", "increment", "list", "set", "user"]
    assert seen["user"] == ["delete", "get", "increment", "list", "set"]


def test_get_set_delete(server: FaztServer, kv: str) -> None:
    missing = op(server, kv, "get", "gsd:nothing")
    assert missing["ok"] and missing["undefined"] and not missing["null"]

    assert ok(server, kv, "set", "gsd:a", "one") is None
    assert ok(server, kv, "get", "gsd:a") == "one"
    ok(server, kv, "set", "gsd:a", "two")                 # overwrite
    assert ok(server, kv, "get", "gsd:a") == "two"

    assert ok(server, kv, "delete", "gsd:a") is True
    assert op(server, kv, "get", "gsd:a")["undefined"]
    assert ok(server, kv, "delete", "gsd:a") is False     # already gone

    empty = refused(server, kv, "get", "")
    assert empty["code"] == "capability_error"
    assert "non-empty" in empty["message"]
    assert refused(server, kv, "get", 42)["code"] == "capability_error"


def test_json_values_round_trip(server: FaztServer, kv: str) -> None:
    values: dict[str, Any] = {
        "nested": {"a": {"b": [1, 2.5, {"c": None}, [], {}]}, "t": True, "f": False},
        "unicode": "ü ☃ 日本語 😀 \u0001 \"quoted\" \\ back",
        "list": [None, 0, -1, 1e300, "", [[[]]]],
        "int": 2**53 - 1,
        "float": 0.1,
        "empty": "",
        "zero": 0,
        "false": False,
    }
    for key, value in values.items():
        ok(server, kv, "set", f"json:{key}", value)
    for key, value in values.items():
        assert ok(server, kv, "get", f"json:{key}") == value, key

    # null is stored and read back as null; a missing key is undefined
    ok(server, kv, "set", "json:null", None)
    stored_null = op(server, kv, "get", "json:null")
    assert stored_null["ok"] and stored_null["null"] and not stored_null["undefined"]
    missing = op(server, kv, "get", "json:absent")
    assert missing["undefined"] and not missing["null"]


def test_list_pages_in_key_order_with_cursor(server: FaztServer, kv: str) -> None:
    keys = [f"page:{i:03d}" for i in range(25)]
    batch(server, kv, [("set", [k, i]) for i, k in enumerate(reversed(keys))])
    batch(server, kv, [("set", ["pagf:outside", 1]), ("set", ["pag", 1]),
                       ("set", ["page", 1])])          # just outside the prefix "page:"

    pages = list_all(server, kv, "page:", limit=10)
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [k for p in pages for k in p] == keys

    first = ok(server, kv, "list", "page:", {"limit": 3})
    assert [item["key"] for item in first["items"]] == keys[:3]
    assert first["items"][0] == {"key": "page:000", "value": 24, "expiresAt": None}
    assert first["cursor"]

    # exactly a page's worth: no cursor after the last page
    whole = ok(server, kv, "list", "page:", {"limit": 25})
    assert len(whole["items"]) == 25 and whole["cursor"] is None

    # keys are ordered by code point (as UTF-8 bytes), not by UTF-16 unit
    uni = ["uni:a", "uni:z", "uni:é", "uni:\uff61", "uni:😀"]
    batch(server, kv, [("set", [k, 1]) for k in reversed(uni)])
    assert [k for p in list_all(server, kv, "uni:", limit=2) for k in p] == sorted(uni)

    bad = refused(server, kv, "list", "page:", {"cursor": "!!not base64!!"})
    assert bad["code"] == "capability_error"
    for limit in (0, 1001, "10"):
        assert refused(server, kv, "list", "page:", {"limit": limit})["code"] == \
            "capability_error"


def test_increment(server: FaztServer, kv: str) -> None:
    assert ok(server, kv, "increment", "inc:a") == 1
    assert ok(server, kv, "increment", "inc:a", 10) == 11
    assert ok(server, kv, "increment", "inc:a", -12) == -1
    assert ok(server, kv, "increment", "inc:f", 0.5) == 0.5
    ok(server, kv, "set", "inc:text", "abc")
    not_number = refused(server, kv, "increment", "inc:text")
    assert not_number["code"] == "capability_error"
    assert "not a number" in not_number["message"]
    assert ok(server, kv, "get", "inc:text") == "abc"


@pytest.mark.parametrize("by", ["NaN", "Infinity", "-Infinity"])
def test_increment_by_a_non_finite_number_is_refused(server: FaztServer, kv: str,
                                                     by: str) -> None:
    r = call(server, kv, "POST", "/api/nonfinite", json={"key": f"nonfinite:{by}", "by": by})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] is False and out["code"] == "capability_error", out
    assert op(server, kv, "get", f"nonfinite:{by}")["undefined"]


def test_increment_is_atomic_under_concurrency(server: FaztServer, kv: str) -> None:
    n = 50

    def one(_: int) -> httpx.Response:
        return call(server, kv, "POST", "/api/op", json={"op": "increment",
                                                         "args": ["race", 1]})

    with ThreadPoolExecutor(max_workers=n) as pool:
        responses = list(pool.map(one, range(n)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    results = sorted(r.json()["result"] for r in responses)
    assert results == list(range(1, n + 1))       # each increment saw a distinct value
    assert ok(server, kv, "get", "race") == n


def test_ttl_expires_keys(server: FaztServer, kv: str) -> None:
    ok(server, kv, "set", "ttl:short", "soon gone", {"ttlMs": 1})
    ok(server, kv, "set", "ttl:long", "stays", {"ttlMs": 3_600_000})
    deadline = time.monotonic() + 5
    while not op(server, kv, "get", "ttl:short")["undefined"]:
        assert time.monotonic() < deadline, "a key with ttlMs 1 was still there after 5 s"
        time.sleep(0.01)   # polling for a condition
    listed = ok(server, kv, "list", "ttl:")["items"]
    assert [item["key"] for item in listed] == ["ttl:long"]
    expires = listed[0]["expiresAt"]
    assert isinstance(expires, int)
    assert abs(expires - (time.time() * 1000 + 3_600_000)) < 600_000
    assert ok(server, kv, "delete", "ttl:short") is False     # an expired key is not there

    for ttl in (0, -5, 1.5, "100"):
        assert refused(server, kv, "set", "ttl:bad", 1, {"ttlMs": ttl})["code"] == \
            "capability_error"
    assert op(server, kv, "get", "ttl:bad")["undefined"]


# -- 2. isolation -------------------------------------------------------------------------------

ODD_KEYS = ["secret", "../a", "../../iso-a/secret", "u:alice:x", "u:", "iso-a:secret",
            "a/b", "%00", "\u0001", "\\", "' OR 1=1 --", "é", "😀", " "]


@pytest.fixture(scope="module")
def two_apps(server: FaztServer) -> tuple[str, str]:
    deploy(server, "iso-a", kv_app())
    deploy(server, "iso-b", kv_app())
    batch(server, "iso-a", [("set", [k, f"A:{k}"]) for k in ODD_KEYS])
    return "iso-a", "iso-b"


def test_apps_do_not_see_each_others_keys(server: FaztServer,
                                          two_apps: tuple[str, str]) -> None:
    a, b = two_apps
    for key in ODD_KEYS:
        assert op(server, b, "get", key)["undefined"], key
    assert ok(server, b, "list", "")["items"] == []
    assert ok(server, b, "list", None)["items"] == []
    assert ok(server, b, "delete", "secret") is False

    # the same key names in B are B's own
    batch(server, b, [("set", ["secret", "B"]), ("increment", ["u:alice:x"])])
    assert ok(server, a, "get", "secret") == "A:secret"
    assert ok(server, a, "get", "u:alice:x") == "A:u:alice:x"
    assert ok(server, b, "get", "u:alice:x") == 1
    assert sorted(i["key"] for i in ok(server, b, "list", "")["items"]) == \
        ["secret", "u:alice:x"]
    assert sorted(i["key"] for i in ok(server, a, "list", "", {"limit": 1000})["items"]) == \
        sorted(ODD_KEYS)
    assert all(i["value"] == f"A:{i['key']}" for i in ok(server, a, "list", "")["items"])


def test_nul_keys_are_refused(server: FaztServer, two_apps: tuple[str, str]) -> None:
    a, b = two_apps
    for key in ("\u0000", "secret\u0000", "\u0000secret", "a\u0000b"):
        for method, args in (("get", [key]), ("set", [key, 1]), ("delete", [key]),
                             ("increment", [key])):
            out = refused(server, b, method, *args)
            assert out["code"] == "capability_error", (key, method, out)
            assert "NUL" in out["message"]
    assert ok(server, a, "get", "secret") == "A:secret"


def test_forged_app_in_extra_arguments_is_refused(server: FaztServer,
                                                  two_apps: tuple[str, str]) -> None:
    a, b = two_apps
    attempts: list[tuple[str, list[Any]]] = [
        ("get", ["secret", a]),
        ("get", ["secret", {"app": a}]),
        ("delete", ["secret", a]),
        ("set", ["secret", "pwned", {"app": a}]),
        ("set", ["secret", "pwned", {"ttlMs": 1000}, a]),
        ("list", ["", {"app": a}]),
        ("list", ["", {"scope": ""}]),
        ("increment", ["secret", 1, {"app": a}]),
        ("increment", ["secret", 1, None, a]),
    ]
    for method, args in attempts:
        out = refused(server, b, method, *args)
        assert out["code"] == "capability_error", (method, args, out)
    assert ok(server, a, "get", "secret") == "A:secret"
    assert ok(server, b, "get", "secret") != "A:secret"

    # let go, such a refusal is a 400 for the client
    error = assert_error(uncaught(server, b, "get", "secret", a), 400, "capability_error")
    assert "kv.get takes 1 argument" in error["message"] and "got 2" in error["message"]


def test_user_scope_needs_a_signed_in_user(server: FaztServer,
                                           two_apps: tuple[str, str]) -> None:
    a, _ = two_apps
    for method, args in (("user.get", ["x"]), ("user.set", ["x", 1]), ("user.list", [""]),
                         ("user.delete", ["x"]), ("user.increment", ["x"])):
        out = refused(server, a, method, *args)
        assert out["code"] == "auth_required", (method, out)
    assert_error(uncaught(server, a, "user.get", "secret"), 401, "auth_required")


CAPS_TAMPER_JS = """\
'use strict';
module.exports = async function (request, caps) {
  const tried = {};
  function attempt(name, fn) {
    try { fn(); tried[name] = 'allowed'; } catch (e) { tried[name] = e.name; }
  }
  // Make the runtime's JSON.stringify([cap, method, args]) name another capability, or swap
  // the caps it hands out: every intrinsic and the caps object are frozen.
  attempt('Array.prototype.toJSON', function () {
    Object.defineProperty(Array.prototype, 'toJSON', { value: function () {
      return ['db', 'get', ['secret']]; } });
  });
  attempt('Object.prototype.toJSON', function () {
    Object.defineProperty(Object.prototype, 'toJSON', { value: function () {
      return ['db', 'get', ['secret']]; } });
  });
  attempt('JSON.stringify', function () { JSON.stringify = function () { return '[]'; }; });
  attempt('caps.db', function () { caps.db = caps.kv; });
  attempt('caps.kv.get', function () { caps.kv.get = function () {}; });
  attempt('caps.kv.user.get', function () { caps.kv.user.get = caps.kv.get; });
  const globals = ['call', 'host', 'send', 'capCall', 'pending', 'runtime']
    .filter(function (n) { return typeof globalThis[n] !== 'undefined'; });
  tried.changed = [typeof caps.db, typeof [].toJSON, typeof ({}).toJSON,
                  JSON.stringify([1]), caps.kv.get === caps.kv.user.get];
  let result;
  try { result = await caps.kv.get('secret'); }
  catch (e) { result = { code: e.code, message: e.message }; }
  return { json: { tried: tried, globals: globals, result: result,
                   keys: Object.keys(caps).sort() } };
};
"""


def test_handler_cannot_reach_the_raw_capability_rpc(server: FaztServer) -> None:
    deploy(server, "tamper", {"manifest.json": manifest(kv={}), "api/main.js": CAPS_TAMPER_JS})
    r = call(server, "tamper", "GET", "/api/x")
    assert r.status_code == 200, r.text
    seen = r.json()
    changed = seen["tried"].pop("changed")
    assert seen["tried"] == {name: "TypeError" for name in (
        "Array.prototype.toJSON", "Object.prototype.toJSON", "JSON.stringify", "caps.db",
        "caps.kv.get", "caps.kv.user.get")}
    assert changed == ["undefined", "undefined", "undefined", "[1]", False]
    assert seen["globals"] == []
    assert seen["keys"] == ["blobs", "budget", "docs", "kv", "log", "net"]
    # its own kv still answers, for its own (missing) key: undefined, dropped from the JSON
    assert "result" not in seen


NO_KV_JS = """\
module.exports = async function (request, caps) {
  if (request.path === '/api/call') return { json: await caps.kv.get('k') };
  return { json: { kv: typeof caps.kv, keys: Object.keys(caps).sort() } };
};
"""


def test_app_without_kv_in_its_manifest_is_refused_kv(server: FaztServer) -> None:
    deploy(server, "nokv", {"api/main.js": NO_KV_JS})
    # caps.kv exists, but every call is refused with the manifest entry to add
    assert call(server, "nokv", "GET", "/api/x").json() == {
        "kv": "object", "keys": ["blobs", "budget", "docs", "kv", "log", "net"]}
    error = assert_error(call(server, "nokv", "GET", "/api/call"), 403,
                         "capability_not_granted")
    assert '"capabilities": {"kv": {}}' in error["message"]

    deploy(server, "nokv", {"manifest.json": manifest(env=[]), "api/main.js": NO_KV_JS})
    assert_error(call(server, "nokv", "GET", "/api/call"), 403, "capability_not_granted")

    # asking for kv in the manifest makes it available on the next deploy
    deploy(server, "nokv", kv_app())
    assert caps_of(server, "nokv")["kv"] == "object"
    assert ok(server, "nokv", "set", "k", "v") is None
    assert ok(server, "nokv", "get", "k") == "v"
    granted = policy(server, "nokv")
    assert granted["requested"] == {"kv": {}}
    assert granted["granted"] == {"kv": {"quota_mb": 100}}


# -- 3. limits ----------------------------------------------------------------------------------

def big(server: FaztServer, app: str, key: str, size: int, *, uncaught: bool = False
        ) -> httpx.Response:
    return call(server, app, "POST", "/api/big",
                json={"key": key, "size": size, "uncaught": uncaught})


def length_of(server: FaztServer, app: str, key: str) -> int | None:
    r = call(server, app, "POST", "/api/len", json={"key": key})
    assert r.status_code == 200, r.text
    return r.json()["length"]


def test_value_size_limit(server: FaztServer) -> None:
    app = "vlimit"
    deploy(server, app, kv_app(memory_mb=BIG_MEMORY_MB))
    # the limit is on the value as JSON text: a string of n characters is n + 2 bytes
    assert big(server, app, "at", MIB - 2).json() == {"stored": True}
    assert length_of(server, app, "at") == MIB - 2

    over = big(server, app, "over", MIB - 1).json()
    assert over["stored"] is False
    assert over["code"] == "value_too_large"
    assert f"{MIB + 1} bytes" in over["message"] and f"{MIB}-byte limit" in over["message"]

    error = assert_error(big(server, app, "over", MIB + 100, uncaught=True), 413,
                         "value_too_large")
    assert "kv.set" in error["message"]
    assert op(server, app, "get", "over")["undefined"]
    assert [i["key"] for i in ok(server, app, "list", "")["items"]] == ["at"]


def test_repeated_large_values_fit_in_a_worker(server: FaztServer) -> None:
    # With the default js_memory_mb (128), garbage from ~1 MB values used to pile up until
    # every third or fourth request ran out of memory; the worker now collects when idle.
    deploy(server, "vrepeat", kv_app())
    statuses = [big(server, "vrepeat", "k", 1_000_000).status_code for _ in range(30)]
    assert statuses == [200] * 30


def test_key_size_limit(server: FaztServer, kv: str) -> None:
    def bigkey(char: str, count: int, method: str = "set") -> dict[str, Any]:
        r = call(server, kv, "POST", "/api/bigkey",
                 json={"char": char, "count": count, "op": method})
        assert r.status_code == 200, r.text
        return r.json()

    assert bigkey("k", MAX_KEY_BYTES) == {"ok": True}
    assert bigkey("é", MAX_KEY_BYTES // 2) == {"ok": True}          # 2 bytes each
    for char, count in (("k", MAX_KEY_BYTES + 1), ("é", MAX_KEY_BYTES // 2 + 1),
                        ("😀", MAX_KEY_BYTES // 4 + 1)):
        for method in ("set", "get", "increment", "delete"):
            out = bigkey(char, count, method)
            assert out["ok"] is False and out["code"] == "key_too_large", (char, method, out)
    long_prefix = refused(server, kv, "list", "p" * (MAX_KEY_BYTES + 1))
    assert long_prefix["code"] == "key_too_large"
    assert_error(uncaught(server, kv, "set", "k" * (MAX_KEY_BYTES + 1), 1), 413,
                 "key_too_large")


def test_quota_is_enforced_all_or_nothing(server: FaztServer) -> None:
    deploy(server, "quota", kv_app(quota_mb=1, memory_mb=BIG_MEMORY_MB))
    assert policy(server, "quota")["granted"] == {"kv": {"quota_mb": 1}}
    chunk = 300_000         # 1 MB (1,048,576 bytes) holds three, not four
    for key in ("q1", "q2", "q3"):
        assert big(server, "quota", key, chunk).json() == {"stored": True}

    refused_write = big(server, "quota", "q4", chunk).json()
    assert refused_write["stored"] is False and refused_write["code"] == "storage_quota"
    assert "1 MB quota" in refused_write["message"]
    error = assert_error(big(server, "quota", "q4", chunk, uncaught=True), 413, "storage_quota")
    assert "quota" in error["message"]

    # nothing half-written: the refused key is absent, the earlier ones whole, and the usage
    # counts exactly their keys and JSON values
    entry = 2 + chunk + 2
    assert policy(server, "quota")["usage_bytes"] == {"kv": 3 * entry}
    for key in ("q1", "q2", "q3"):
        assert length_of(server, "quota", key) == chunk
    assert op(server, "quota", "get", "q4")["undefined"]
    assert [i["key"] for i in ok(server, "quota", "list", "")["items"]] == ["q1", "q2", "q3"]

    # growing an existing key past the quota is refused too, and leaves it as it was
    assert big(server, "quota", "q3", chunk + 200_000).json()["code"] == "storage_quota"
    assert length_of(server, "quota", "q3") == chunk
    # shrinking never is, and the room it frees is usable
    assert big(server, "quota", "q3", 10).json() == {"stored": True}
    assert big(server, "quota", "q3", chunk).json() == {"stored": True}

    assert policy(server, "quota")["usage_bytes"] == {"kv": 3 * entry}

    # deleting frees room
    assert ok(server, "quota", "delete", "q1") is True
    assert policy(server, "quota")["usage_bytes"] == {"kv": 2 * entry}
    assert big(server, "quota", "q4", chunk).json() == {"stored": True}
    assert length_of(server, "quota", "q4") == chunk
    assert policy(server, "quota")["usage_bytes"] == {"kv": 3 * entry}


def test_usage_follows_every_write(server: FaztServer) -> None:
    deploy(server, "usage", kv_app())

    def usage() -> int:
        return int(policy(server, "usage")["usage_bytes"].get("kv", 0))

    assert usage() == 0
    ok(server, "usage", "set", "grow", 9)                 # "grow" + "9"
    assert usage() == 5
    assert ok(server, "usage", "increment", "grow") == 10  # "10"
    assert usage() == 6
    ok(server, "usage", "set", "grow", "ü")               # '"ü"' is 4 bytes of UTF-8
    assert usage() == 8
    ok(server, "usage", "set", "é", None)                 # 2 + 4
    assert usage() == 14
    assert refused(server, "usage", "increment", "grow")["code"] == "capability_error"
    assert usage() == 14
    ok(server, "usage", "delete", "grow")
    ok(server, "usage", "delete", "é")
    assert usage() == 0


def test_expired_keys_free_quota_once_swept(server: FaztServer) -> None:
    deploy(server, "quota-ttl", kv_app(quota_mb=1, memory_mb=BIG_MEMORY_MB))
    r = call(server, "quota-ttl", "POST", "/api/op", json={
        "op": "set", "args": ["big", "y" * 600_000, {"ttlMs": 1}]})
    assert r.status_code == 200 and r.json()["ok"], r.text
    # the server sweeps expired keys every 0.1 s here: the room comes back
    deadline = time.monotonic() + 10
    while True:
        result = big(server, "quota-ttl", "after", 600_000).json()
        if result["stored"]:
            break
        assert result["code"] == "storage_quota", result
        assert time.monotonic() < deadline, "an expired key's bytes were never freed"
        time.sleep(0.05)   # polling for a condition
    assert length_of(server, "quota-ttl", "after") == 600_000
    assert policy(server, "quota-ttl")["usage_bytes"] == {"kv": len("after") + 600_002}


# -- 4. policy ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pol(server: FaztServer) -> str:
    deploy(server, "pol", kv_app(quota_mb=5, memory_mb=BIG_MEMORY_MB))
    ok(server, "pol", "set", "kept", "still here")
    return "pol"


def test_policy_withhold_and_allow_via_cli(server: FaztServer, pol: str) -> None:
    shown = cli_ok(server, "app", "policy", pol)
    assert "withheld nothing" in shown

    out = cli_ok(server, "app", "policy", pol, "--withhold", "kv")
    assert "withheld kv" in out
    assert "withheld by policy" in out
    # the next request runs in a reloaded worker whose kv refuses every call, saying why
    seen = caps_of(server, pol)
    assert seen["kv"] == "object"
    refused = op(server, pol, "get", "kept")
    assert refused["ok"] is False and refused["code"] == "capability_not_granted"
    assert "operator withholds 'kv'" in refused["message"]
    caps = policy(server, pol)
    assert caps["withheld"] == ["kv"]
    assert caps["granted"] == {}
    assert caps["requested"] == {"kv": {"quota_mb": 5}}
    assert caps["policy"] == {"withheld": ["kv"], "quota_mb": {}}

    info = cli_ok(server, "app", "info", pol)
    kv_row = next(line for line in info.splitlines() if " kv " in f" {line} ")
    assert "quota 5 MB" in kv_row and "withheld by policy" in kv_row

    out = cli_ok(server, "app", "policy", pol, "--allow", "kv")
    assert "withheld nothing" in out
    assert caps_of(server, pol)["kv"] == "object"
    assert ok(server, pol, "get", "kept") == "still here"      # withholding kept the data
    assert policy(server, pol)["policy"] == {"withheld": [], "quota_mb": {}}


def test_policy_quota_lowers_and_restores(server: FaztServer, pol: str) -> None:
    out = cli_ok(server, "app", "policy", pol, "--quota", "kv=1")
    assert "kv=1 MB" in out
    caps = policy(server, pol)
    assert caps["granted"] == {"kv": {"quota_mb": 1}}
    assert caps["policy"]["quota_mb"] == {"kv": 1}
    info = cli_ok(server, "app", "info", pol)
    kv_row = next(line for line in info.splitlines() if " kv " in f" {line} ")
    assert "quota 5 MB" in kv_row and "quota 1 MB" in kv_row

    assert big(server, pol, "half", 600_000).json() == {"stored": True}
    over = big(server, pol, "more", 600_000).json()
    assert over["code"] == "storage_quota" and "1 MB quota" in over["message"]

    # a policy quota above the manifest's does not raise it
    cli_ok(server, "app", "policy", pol, "--quota", "kv=50")
    assert policy(server, pol)["granted"] == {"kv": {"quota_mb": 5}}
    cli_ok(server, "app", "policy", pol, "--quota", "kv=default")
    assert policy(server, pol)["policy"] == {"withheld": [], "quota_mb": {}}
    assert big(server, pol, "more", 600_000).json() == {"stored": True}
    for key in ("half", "more"):
        ok(server, pol, "delete", key)


def test_policy_reset(server: FaztServer, pol: str) -> None:
    r = post_policy(server, pol, json={"withhold": ["kv"], "quota_mb": {"kv": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["capabilities"]["policy"] == {"withheld": ["kv"], "quota_mb": {"kv": 2}}
    r = post_policy(server, pol, json={"reset": True})
    assert r.status_code == 200, r.text
    assert r.json()["capabilities"]["policy"] == {"withheld": [], "quota_mb": {}}
    assert caps_of(server, pol)["kv"] == "object"


@pytest.mark.parametrize(("body", "code", "needle"), [
    ({"withhold": ["db"]}, "bad_request", "unknown capability 'db'"),
    ({"allow": ["nope"]}, "bad_request", "unknown capability"),
    ({"quota_mb": {"files": 3}}, "bad_request", "unknown capability"),
    ({"quota_mb": {"env": 3}}, "bad_request", "env has no quota"),
    ({"quota_mb": {"kv": 0}}, "bad_request", "from 1 to"),
    ({"quota_mb": {"kv": -1}}, "bad_request", "from 1 to"),
    ({"quota_mb": {"kv": "5"}}, "bad_request", "from 1 to"),
    ({"quota_mb": {"kv": True}}, "bad_request", "from 1 to"),
    ({"quota_mb": {"kv": 1.5}}, "bad_request", "from 1 to"),
    ({"quota_mb": [1]}, "bad_request", "quota_mb"),
    ({"withhold": "kv"}, "bad_request", "list of names"),
    ({"withhold": [1]}, "bad_request", "list of names"),
    ({"withhold": ["kv"], "allow": ["kv"]}, "bad_request", "both"),
    ({"reset": "yes"}, "bad_request", "reset"),
    ({"withold": ["kv"]}, "bad_request", "unknown key 'withold'"),
])
def test_policy_bad_input(server: FaztServer, pol: str, body: dict[str, Any], code: str,
                          needle: str) -> None:
    error = assert_error(post_policy(server, pol, json=body), 400, code)
    assert needle in error["message"]
    assert policy(server, pol)["policy"] == {"withheld": [], "quota_mb": {}}


def test_policy_bad_json_and_missing_app(server: FaztServer, pol: str) -> None:
    r = post_policy(server, pol, content=b'{"withhold": [', headers={
        "content-type": "application/json"})
    assert_error(r, 400, "invalid_json")
    r = post_policy(server, pol, content=b'["kv"]', headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text

    with server.admin() as admin:
        assert_error(admin.get("/api/apps/no-such-app/policy"), 404, "app_not_found")
    assert_error(post_policy(server, "no-such-app", json={"withhold": ["kv"]}), 404,
                 "app_not_found")
    assert_error(post_policy(server, "no-such-app", json={}), 404, "app_not_found")

    assert "app_not_found" in cli_fails(server, "app", "policy", "no-such-app")
    assert "app_not_found" in cli_fails(server, "app", "policy", "no-such-app",
                                        "--withhold", "kv")
    assert "unknown capability" in cli_fails(server, "app", "policy", pol, "--withhold", "db")
    assert "bad_request" in cli_fails(server, "app", "policy", pol, "--quota", "kv=0")
    assert "CAP=MB" in cli_fails(server, "app", "policy", pol, "--quota", "kv")
    assert "CAP=MB" in cli_fails(server, "app", "policy", pol, "--quota", "kv=-3")


def test_policy_needs_the_admin_token(server: FaztServer, pol: str) -> None:
    with server.admin(token="") as anonymous:
        assert anonymous.get(f"/api/apps/{pol}/policy").status_code == 401
        r = anonymous.post(f"/api/apps/{pol}/policy", json={"withhold": ["kv"]})
        assert r.status_code == 401
        assert anonymous.get(f"/api/apps/{pol}/env").status_code == 401
        assert anonymous.patch(f"/api/apps/{pol}/env", json={"set": {"A": "1"}}) \
            .status_code == 401
    assert policy(server, pol)["withheld"] == []


def test_app_info_shows_requested_and_granted(server: FaztServer) -> None:
    deploy(server, "info-caps", kv_app(quota_mb=3, env=["PUBLIC_URL"]))
    with server.admin() as admin:
        info = admin.get("/api/apps/info-caps").json()
    assert info["capabilities"] == {
        "requested": {"env": ["PUBLIC_URL"], "kv": {"quota_mb": 3}},
        "granted": {"env": ["PUBLIC_URL"], "kv": {"quota_mb": 3}},
        "withheld": [],
        "policy": {"withheld": [], "quota_mb": {}},
        "usage_bytes": {},
        "net_rules": [],
    }
    out = cli_ok(server, "app", "info", "info-caps")
    assert "requested" in out and "granted" in out
    kv_row = next(line for line in out.splitlines() if " kv " in f" {line} ")
    assert kv_row.count("quota 3 MB") == 2
    env_row = next(line for line in out.splitlines() if " env " in f" {line} ")
    assert env_row.count("PUBLIC_URL") == 2

    deploy(server, "info-none", {"index.html": "x"})
    out = cli_ok(server, "app", "info", "info-none")
    assert "none requested" in out


# -- 5. env -------------------------------------------------------------------------------------

ENV_JS = """\
module.exports = async function (request, caps) {
  const env = caps.env;
  if (env === undefined) return { json: { env: 'undefined' } };
  const names = ['A', 'B', 'C'];
  const seen = {};
  for (const n of names) seen[n] = env[n] === undefined ? '<undefined>' : env[n];
  return { json: { seen: seen, keys: Object.keys(env).sort(), frozen: Object.isFrozen(env) } };
};
"""


@pytest.fixture(scope="module")
def envy(server: FaztServer) -> str:
    deploy(server, "envy", {"manifest.json": manifest(env=["A", "C"]), "api/main.js": ENV_JS})
    return "envy"


def env_seen(server: FaztServer, app: str) -> dict[str, Any]:
    r = call(server, app, "GET", "/api/env")
    assert r.status_code == 200, r.text
    return r.json()


def test_env_set_unset_list(server: FaztServer, envy: str) -> None:
    assert env_seen(server, envy) == {"seen": {"A": "<undefined>", "B": "<undefined>",
                                               "C": "<undefined>"}, "keys": [], "frozen": True}
    out = server.cli("app", "env", "list", envy)
    assert out.returncode == 0 and out.stdout == ""
    assert "no env values" in out.stderr

    out = cli_ok(server, "app", "env", "set", envy, "A=1", "B=two")
    assert "A, B" in out
    # B is set, but the manifest does not list it: the handler never sees it
    assert env_seen(server, envy) == {"seen": {"A": "1", "B": "<undefined>",
                                               "C": "<undefined>"}, "keys": ["A"],
                                      "frozen": True}
    assert cli_ok(server, "app", "env", "list", envy) == "A=1\nB=two\n"

    # a change reaches the next request (the app's workers reload)
    cli_ok(server, "app", "env", "set", envy, "A=changed = with equals", "C=")
    assert env_seen(server, envy)["seen"] == {"A": "changed = with equals",
                                              "B": "<undefined>", "C": ""}
    cli_ok(server, "app", "env", "set", envy, "A=ünïcode ☃")
    assert env_seen(server, envy)["seen"]["A"] == "ünïcode ☃"

    out = cli_ok(server, "app", "env", "unset", envy, "A", "NOT_SET")
    assert "unset A" in out
    assert env_seen(server, envy)["seen"] == {"A": "<undefined>", "B": "<undefined>", "C": ""}
    assert cli_ok(server, "app", "env", "list", envy) == "B=two\nC=\n"

    with server.admin() as admin:
        r = admin.get(f"/api/apps/{envy}/env")
        assert r.status_code == 200
        assert r.json() == {"app": envy, "env": {"B": "two", "C": ""}}
        r = admin.patch(f"/api/apps/{envy}/env", json={"set": {"A": "api"}, "unset": ["C"]})
        assert r.status_code == 200, r.text
        assert r.json()["env"] == {"A": "api", "B": "two"}
    assert env_seen(server, envy)["seen"] == {"A": "api", "B": "<undefined>",
                                              "C": "<undefined>"}
    cli_ok(server, "app", "env", "unset", envy, "A", "B")


def test_env_list_escapes_control_characters(server: FaztServer, envy: str) -> None:
    with server.admin() as admin:
        r = admin.patch(f"/api/apps/{envy}/env", json={"set": {"C": "a\x1b[31mred\x07"}})
        assert r.status_code == 200, r.text
    out = cli_ok(server, "app", "env", "list", envy)
    assert "\x1b" not in out and "\x07" not in out
    assert "C=a\\x1b[31mred\\x07" in out
    assert env_seen(server, envy)["seen"]["C"] == "a\x1b[31mred\x07"
    cli_ok(server, "app", "env", "unset", envy, "C")


def test_app_without_env_in_its_manifest_has_no_env(server: FaztServer, kv: str) -> None:
    cli_ok(server, "app", "env", "set", kv, "A=1")
    seen = caps_of(server, kv)
    assert seen["env"] == "undefined"
    assert "env" not in seen["keys"]
    cli_ok(server, "app", "env", "unset", kv, "A")


@pytest.mark.parametrize(("args", "needle"), [
    (("lower=1",), "invalid env name"),
    (("1ABC=x",), "invalid env name"),
    (("A-B=x",), "invalid env name"),
    (("=x",), "invalid env name"),
    (("A" * 65 + "=x",), "invalid env name"),
    (("NOEQUALS",), "NAME=VALUE"),
    (("A=" + "v" * (MAX_ENV_VALUE_BYTES + 1),), "payload_too_large"),
    (("A=" + "é" * (MAX_ENV_VALUE_BYTES // 2 + 1),), "payload_too_large"),
])
def test_env_bad_input(server: FaztServer, envy: str, args: tuple[str, ...],
                       needle: str) -> None:
    err = cli_fails(server, "app", "env", "set", envy, "OK_NAME=fine", *args)
    assert needle in err
    # all or nothing: the valid name given alongside was not set either
    with server.admin() as admin:
        assert "OK_NAME" not in admin.get(f"/api/apps/{envy}/env").json()["env"]


def test_env_limits_at_the_edge(server: FaztServer, envy: str) -> None:
    name = "N" * 64
    cli_ok(server, "app", "env", "set", envy, f"{name}=" + "v" * MAX_ENV_VALUE_BYTES)
    with server.admin() as admin:
        assert len(admin.get(f"/api/apps/{envy}/env").json()["env"][name]) == \
            MAX_ENV_VALUE_BYTES
    assert "invalid env name" in cli_fails(server, "app", "env", "unset", envy, "lower")
    cli_ok(server, "app", "env", "unset", envy, name)


def test_env_bad_api_requests(server: FaztServer, envy: str) -> None:
    with server.admin() as admin:
        def patch(**kwargs: Any) -> httpx.Response:
            return admin.patch(f"/api/apps/{envy}/env", **kwargs)

        assert_error(patch(content=b"{", headers={"content-type": "application/json"}), 400,
                     "invalid_json")
        assert_error(patch(json={}), 400, "bad_request")
        assert_error(patch(json={"set": ["A"]}), 400, "bad_request")
        assert_error(patch(json={"set": {"A": 1}}), 400, "bad_request")
        assert_error(patch(json={"set": {"A": "x\u0000y"}}), 400, "bad_request")
        assert_error(patch(json={"set": {"A": "1"}, "unset": ["A"]}), 400, "bad_request")
        assert_error(patch(json={"sett": {"A": "1"}}), 400, "bad_request")
        assert_error(patch(json={"set": {"A": "v" * (MAX_ENV_VALUE_BYTES + 1)}}), 413,
                     "payload_too_large")
        assert admin.get(f"/api/apps/{envy}/env").json()["env"] == {}

        assert_error(admin.get("/api/apps/no-such-app/env"), 404, "app_not_found")
        assert_error(admin.patch("/api/apps/no-such-app/env", json={"set": {"A": "1"}}), 404,
                     "app_not_found")
    assert "app_not_found" in cli_fails(server, "app", "env", "list", "no-such-app")
    assert "app_not_found" in cli_fails(server, "app", "env", "set", "no-such-app", "A=1")
    assert "app_not_found" in cli_fails(server, "app", "env", "unset", "no-such-app", "A")


# -- 6. fazt app validate -----------------------------------------------------------------------

def write_dir(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


GOOD_LIB = "exports.double = function (n) {\n  return n * 2;\n};\n"
GOOD_MAIN = ("const lib = require('./lib.js');\n"
             "module.exports = async function (request, { kv }) {\n"
             "  return { json: { n: lib.double(await kv.increment('n')) } };\n};\n")


def test_validate_good_dir(server: FaztServer, tmp_path: Path) -> None:
    site = write_dir(tmp_path / "good", {
        "manifest.json": manifest(kv={"quota_mb": 10}, env=["PUBLIC_URL"]),
        "index.html": "hi", "api/main.js": GOOD_MAIN, "api/lib.js": GOOD_LIB,
        "api/data.json": '{"a": 1}'})
    out = server.cli("app", "validate", str(site))
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout
    assert "env, kv" in out.stdout
    assert "warning" not in out.stderr and "error" not in out.stderr

    # and it deploys and runs as validated
    assert server.cli("app", "deploy", str(site), "--name", "validated").returncode == 0
    assert call(server, "validated", "GET", "/api/x").json() == {"n": 2}


def test_validate_es_module_dir(server: FaztServer, tmp_path: Path) -> None:
    site = write_dir(tmp_path / "esm", {
        "api/main.js": "import { double } from './lib.js';\n"
                       "export default async function (request) {\n"
                       "  return { json: { n: double(2) } };\n}\n",
        "api/lib.js": "export function double(n) { return n * 2; }\n"})
    out = server.cli("app", "validate", str(site))
    assert out.returncode == 0, out.stderr
    assert "capabilities: none" in out.stdout


@pytest.mark.parametrize(("capabilities", "key"), [
    ({"kv": {"quota_mb": 0}}, "capabilities.kv.quota_mb"),
    ({"kv": {"quota_mb": "10"}}, "capabilities.kv.quota_mb"),
    ({"kv": {"quota_mb": 2_000_000}}, "capabilities.kv.quota_mb"),
    ({"kv": {"quotamb": 1}}, "capabilities.kv.quotamb"),
    ({"kv": []}, "capabilities.kv"),
    ({"env": ["lower"]}, "capabilities.env[0]"),
    ({"env": ["OK", "1BAD"]}, "capabilities.env[1]"),
    ({"env": "A"}, "capabilities.env"),
    ({"db": {}}, "capabilities.db"),
])
def test_validate_reports_the_manifest_key(server: FaztServer, tmp_path: Path,
                                           capabilities: dict[str, Any], key: str) -> None:
    site = write_dir(tmp_path / "bad", {"manifest.json": manifest(**capabilities),
                                        "index.html": "x"})
    err = cli_fails(server, "app", "validate", str(site))
    assert f'"{key}"' in err
    # a deploy refuses the same manifest, naming the same key
    r = server.deploy("bad-manifest", {"manifest.json": manifest(**capabilities),
                                       "api/main.js": GOOD_MAIN})
    assert_error(r, 422, "invalid_manifest")
    assert key in r.json()["error"]["message"]


def test_validate_reports_a_syntax_error_with_file_and_line(server: FaztServer,
                                                            tmp_path: Path) -> None:
    site = write_dir(tmp_path / "syntax", {
        "api/main.js": GOOD_MAIN,
        "api/lib.js": "exports.a = 1;\nexports.b = 2;\nexports.c = (3 +;\nexports.d = 4;\n"})
    err = cli_fails(server, "app", "validate", str(site))
    assert "api/lib.js:3" in err
    assert "SyntaxError" in err
    assert "api/main.js" not in err.replace("api/main.js (the handler)", "")


def test_validate_does_not_run_the_code(server: FaztServer, tmp_path: Path) -> None:
    site = write_dir(tmp_path / "escape", {
        "api/main.js": GOOD_MAIN,
        "api/lib.js": "exports.a = 1;\n}); while(true){} (function(){\n"})
    started = time.monotonic()
    err = cli_fails(server, "app", "validate", str(site))
    assert time.monotonic() - started < 30
    assert "api/lib.js:2" in err
    assert "SyntaxError" in err


def test_validate_warns_on_unknown_top_level_key(server: FaztServer, tmp_path: Path) -> None:
    site = write_dir(tmp_path / "unknown", {
        "manifest.json": json.dumps({"colour": "red", "capabilities": {"kv": {}}}),
        "api/main.js": GOOD_MAIN, "api/lib.js": GOOD_LIB})
    out = server.cli("app", "validate", str(site))
    assert out.returncode == 0, out.stderr
    assert "warning" in out.stderr and '"colour"' in out.stderr
    assert "ok" in out.stdout


def test_validate_other_problems(server: FaztServer, tmp_path: Path) -> None:
    no_main = write_dir(tmp_path / "nomain", {"api/lib.js": GOOD_LIB})
    assert "api/main.js" in cli_fails(server, "app", "validate", str(no_main))

    bad_json = write_dir(tmp_path / "badjson", {"api/main.js": GOOD_MAIN,
                                                "api/lib.js": GOOD_LIB,
                                                "api/data.json": "{nope"})
    assert "api/data.json" in cli_fails(server, "app", "validate", str(bad_json))

    not_json = write_dir(tmp_path / "notjson", {"manifest.json": "{", "index.html": "x"})
    assert "manifest.json" in cli_fails(server, "app", "validate", str(not_json))


# -- 7. removal ---------------------------------------------------------------------------------

def test_removing_an_app_deletes_its_data_and_settings(server: FaztServer) -> None:
    deploy(server, "gone", kv_app(quota_mb=2, memory_mb=BIG_MEMORY_MB, env=["A"]))
    batch(server, "gone", [("set", ["k1", "v1"]), ("set", ["k2", {"x": 1}]),
                           ("set", ["exp", 1, {"ttlMs": 3_600_000}])])
    for key in ("fat1", "fat2", "fat3"):
        assert big(server, "gone", key, 600_000).json() == {"stored": True}
    cli_ok(server, "app", "env", "set", "gone", "A=old")
    cli_ok(server, "app", "policy", "gone", "--quota", "kv=1")
    assert ok(server, "gone", "get", "k1") == "v1"

    cli_ok(server, "app", "remove", "gone", "--yes")
    assert call(server, "gone", "GET", "/api/ok").status_code == 404
    with server.admin() as admin:
        assert_error(admin.get("/api/apps/gone/policy"), 404, "app_not_found")
        assert_error(admin.get("/api/apps/gone/env"), 404, "app_not_found")

    deploy(server, "gone", kv_app(quota_mb=2, memory_mb=BIG_MEMORY_MB, env=["A"]))
    assert op(server, "gone", "get", "k1")["undefined"]
    assert ok(server, "gone", "list", "")["items"] == []
    caps = policy(server, "gone")
    assert caps["policy"] == {"withheld": [], "quota_mb": {}}
    assert caps["usage_bytes"].get("kv", 0) == 0
    assert caps["granted"]["kv"] == {"quota_mb": 2}
    with server.admin() as admin:
        assert admin.get("/api/apps/gone/env").json()["env"] == {}
    r = call(server, "gone", "GET", "/api/caps")
    assert r.json()["env"] == "object"
    # the old app's usage went too: the whole 2 MB quota is free again
    for key in ("fat4", "fat5", "fat6"):
        assert big(server, "gone", key, 600_000).json() == {"stored": True}


def test_other_apps_keep_their_data_when_one_is_removed(server: FaztServer) -> None:
    deploy(server, "stay", kv_app())
    deploy(server, "leave", kv_app())
    ok(server, "stay", "set", "k", "stay")
    ok(server, "leave", "set", "k", "leave")
    cli_ok(server, "app", "remove", "leave", "--yes")
    assert ok(server, "stay", "get", "k") == "stay"
