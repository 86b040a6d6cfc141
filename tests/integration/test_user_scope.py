"""Per-user scopes against a real `fazt run` with ``test_user_header``: kv.user, docs.user and
blobs.user keep each signed-in user's data apart from every other user's and from the app's own,
the ``x-fazt-test-user`` header names the user, and a server without the setting ignores it.

One app (``scoped``) answers through a small JSON protocol: ``POST /api/op`` with
``{cap, op, args}`` runs one method (``op`` is dotted: "user.get") and answers what came back,
with a blob from get() given as its text; with ``uncaught`` the handler lets an error escape.
Requests go to 127.0.0.1 with ``Host: scoped.localhost``; there are no sleeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import FaztServer, call, clean_env, deploy, free_port, start_server

pytestmark = pytest.mark.integration

APP = "scoped"
HEADER = "x-fazt-test-user"
MISSING = (None, "<undefined>")

SCOPED_JS = """\
function method(cap, op) {
  return op.split('.').reduce(function (o, k) { return o[k]; }, cap);
}
function shown(cap, op, result) {
  if (result === undefined) return '<undefined>';
  if (cap === 'blobs' && (op === 'get' || op === 'user.get') && result !== null)
    return { text: result.text(), contentType: result.contentType, size: result.size };
  return result;
}
module.exports = async function (request, caps) {
  const body = request.body || {};
  const run = async function () {
    return shown(body.cap, body.op,
                 await method(caps[body.cap], body.op).apply(null, body.args || []));
  };
  if (body.uncaught) return { json: { ok: true, result: await run() } };
  try { return { json: { ok: true, result: await run() } }; }
  catch (e) { return { json: { ok: false, code: e.code, message: e.message } }; }
};
"""
MANIFEST = json.dumps({"capabilities": {"kv": {}, "docs": {}, "blobs": {}}})


def headers(user: str | None) -> dict[str, str]:
    return {} if user is None else {HEADER: user}


def op(server: FaztServer, user: str | None, cap: str, name: str, *args: Any) -> dict[str, Any]:
    r = call(server, APP, "POST", "/api/op", json={"cap": cap, "op": name, "args": list(args)},
             headers=headers(user))
    assert r.status_code == 200, r.text
    return r.json()


def ok(server: FaztServer, user: str | None, cap: str, name: str, *args: Any) -> Any:
    out = op(server, user, cap, name, *args)
    assert out["ok"], out
    return out["result"]


def uncaught(server: FaztServer, user: str | None, cap: str, name: str,
             *args: Any) -> httpx.Response:
    return call(server, APP, "POST", "/api/op",
                json={"cap": cap, "op": name, "args": list(args), "uncaught": True},
                headers=headers(user))


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    return error


def scoped_server(data_dir: Path, **env: str) -> Iterator[FaztServer]:
    srv = start_server(data_dir, env=env)
    try:
        deploy(srv, APP, {"manifest.json": MANIFEST, "api/main.js": SCOPED_JS})
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztServer]:
    yield from scoped_server(tmp_path_factory.mktemp("users") / "data",
                             FAZT_TEST_USER_HEADER="1")


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztServer]:
    yield from scoped_server(tmp_path_factory.mktemp("nousers") / "data")


# -- kv.user ------------------------------------------------------------------------------------

def test_kv_same_key_in_three_scopes_holds_three_values(server: FaztServer) -> None:
    ok(server, None, "kv", "set", "shared", "the app's")
    ok(server, "alice", "kv", "user.set", "shared", "alice's")
    ok(server, "bob", "kv", "user.set", "shared", "bob's")
    assert ok(server, None, "kv", "get", "shared") == "the app's"
    assert ok(server, "alice", "kv", "get", "shared") == "the app's"   # app scope: the same
    assert ok(server, "alice", "kv", "user.get", "shared") == "alice's"
    assert ok(server, "bob", "kv", "user.get", "shared") == "bob's"


def test_kv_alice_cannot_reach_bobs_keys(server: FaztServer) -> None:
    ok(server, "bob", "kv", "user.set", "bob:secret", {"pin": 1234})
    assert ok(server, "alice", "kv", "user.get", "bob:secret") == "<undefined>"
    assert ok(server, None, "kv", "get", "bob:secret") == "<undefined>"    # nor the app scope
    assert ok(server, "alice", "kv", "user.delete", "bob:secret") is False
    assert ok(server, "alice", "kv", "user.increment", "bob:secret") == 1  # her own new key
    assert ok(server, "bob", "kv", "user.get", "bob:secret") == {"pin": 1234}

    ok(server, "alice", "kv", "user.set", "list:a", 1)
    ok(server, "bob", "kv", "user.set", "list:b", 2)
    ok(server, None, "kv", "set", "list:c", 3)
    keys = {who: [item["key"] for item in ok(server, who, "kv",
                                             "list" if who is None else "user.list",
                                             "list:")["items"]]
            for who in ("alice", "bob", None)}
    assert keys == {"alice": ["list:a"], "bob": ["list:b"], None: ["list:c"]}


def test_kv_user_names_are_exact(server: FaztServer) -> None:
    """Users that differ only by case or by a prefix are different users."""
    ok(server, "carol", "kv", "user.set", "k", "carol")
    for other in ("Carol", "caro", "carol2", "carol.x"):
        assert ok(server, other, "kv", "user.get", "k") == "<undefined>", other


# -- docs.user ----------------------------------------------------------------------------------

def test_docs_are_confined_to_their_user(server: FaztServer) -> None:
    ok(server, None, "docs", "insert", "notes", {"_id": "n1", "by": "app"})
    ok(server, "alice", "docs", "user.insert", "notes", {"_id": "n1", "by": "alice"})
    ok(server, "bob", "docs", "user.insert", "notes", {"_id": "n1", "by": "bob"})
    ok(server, "bob", "docs", "user.insert", "notes", {"_id": "n2", "by": "bob"})

    assert ok(server, None, "docs", "get", "notes", "n1")["by"] == "app"
    assert ok(server, "alice", "docs", "user.get", "notes", "n1")["by"] == "alice"
    assert ok(server, "bob", "docs", "user.get", "notes", "n1")["by"] == "bob"
    # (a missing document comes back as undefined, though docs.py's docstring says null)
    assert ok(server, "alice", "docs", "user.get", "notes", "n2") in MISSING
    assert ok(server, None, "docs", "get", "notes", "n2") in MISSING
    assert ok(server, "alice", "docs", "user.count", "notes") == 1
    assert ok(server, "bob", "docs", "user.count", "notes") == 2
    assert ok(server, None, "docs", "count", "notes") == 1
    assert [d["by"] for d in ok(server, "alice", "docs", "user.find", "notes", {})] == ["alice"]

    # alice's writes touch only her documents, whatever the query says
    assert ok(server, "alice", "docs", "user.update", "notes", {}, {"$set": {"seen": True}}) == 1
    assert ok(server, "alice", "docs", "user.delete", "notes", {"by": "bob"}) == 0
    assert ok(server, "bob", "docs", "user.count", "notes", {"seen": True}) == 0
    assert ok(server, None, "docs", "count", "notes", {"seen": True}) == 0
    assert ok(server, "alice", "docs", "user.delete", "notes", {}) == 1
    assert ok(server, "bob", "docs", "user.count", "notes") == 2
    assert ok(server, None, "docs", "count", "notes") == 1


# -- blobs.user ---------------------------------------------------------------------------------

def test_blobs_are_confined_to_their_user(server: FaztServer) -> None:
    ok(server, None, "blobs", "put", "files/a.txt", "the app's")
    ok(server, "alice", "blobs", "user.put", "files/a.txt", "alice's")
    ok(server, "bob", "blobs", "user.put", "files/a.txt", "bob's")
    ok(server, "bob", "blobs", "user.put", "files/b.txt", "only bob")

    assert ok(server, None, "blobs", "get", "files/a.txt")["text"] == "the app's"
    assert ok(server, "alice", "blobs", "user.get", "files/a.txt")["text"] == "alice's"
    assert ok(server, "bob", "blobs", "user.get", "files/a.txt")["text"] == "bob's"
    assert ok(server, "alice", "blobs", "user.get", "files/b.txt") is None
    assert ok(server, None, "blobs", "get", "files/b.txt") is None
    listed = {who: [item["key"] for item in ok(server, who, "blobs",
                                               "list" if who is None else "user.list",
                                               "files/")["items"]]
              for who in ("alice", "bob", None)}
    assert listed == {"alice": ["files/a.txt"], "bob": ["files/a.txt", "files/b.txt"],
                      None: ["files/a.txt"]}
    assert ok(server, "alice", "blobs", "user.delete", "files/b.txt") is False
    assert ok(server, "bob", "blobs", "user.get", "files/b.txt")["text"] == "only bob"

    # a user's blob is never public
    refused = op(server, "alice", "blobs", "user.put", "pub.txt", "x", {"public": True})
    assert not refused["ok"] and refused["code"] == "capability_error", refused


def test_a_users_signed_url_serves_that_users_blob(server: FaztServer) -> None:
    ok(server, "alice", "blobs", "user.put", "doc.txt", "alice's doc")
    ok(server, "bob", "blobs", "user.put", "doc.txt", "bob's doc")
    ok(server, None, "blobs", "put", "doc.txt", "app's doc")
    for who, text in (("alice", "alice's doc"), ("bob", "bob's doc")):
        url = ok(server, who, "blobs", "user.url", "doc.txt")
        r = call(server, APP, "GET", url)
        assert (r.status_code, r.text) == (200, text), (who, url, r.text)


# -- no user, a bad user, and a server without the setting -------------------------------------

USER_CALLS = [("kv", "user.get", ["k"]), ("kv", "user.set", ["k", 1]),
              ("kv", "user.increment", ["k"]), ("kv", "user.list", []),
              ("docs", "user.insert", ["notes", {"a": 1}]), ("docs", "user.find", ["notes"]),
              ("docs", "user.count", ["notes"]),
              ("blobs", "user.put", ["f.txt", "x"]), ("blobs", "user.get", ["f.txt"]),
              ("blobs", "user.list", []), ("blobs", "user.url", ["f.txt"])]


@pytest.mark.parametrize(("cap", "name", "args"), USER_CALLS)
def test_user_methods_without_a_user_need_auth(server: FaztServer, cap: str, name: str,
                                               args: list[Any]) -> None:
    r = uncaught(server, None, cap, name, *args)
    error = assert_error(r, 401, "auth_required")
    assert f"{cap}.{name}" in error["message"], error
    caught = op(server, None, cap, name, *args)
    assert (caught["ok"], caught["code"]) == (False, "auth_required"), caught


def test_the_app_scope_needs_no_user(server: FaztServer) -> None:
    ok(server, None, "kv", "set", "nouser", 1)
    assert ok(server, None, "kv", "get", "nouser") == 1


@pytest.mark.parametrize("value", ["", "has space", "a/b", "semi;colon", "x" * 129, "ünï",
                                   "quote\"d", "com,ma"])
def test_an_invalid_user_header_is_a_bad_request(server: FaztServer, value: str) -> None:
    r = call(server, APP, "POST", "/api/op", json={"cap": "kv", "op": "get", "args": ["k"]},
             headers={HEADER: value.encode("utf-8")})
    error = assert_error(r, 400, "bad_request")
    assert HEADER in error["message"], error


@pytest.mark.parametrize("value", ["a", "x" * 128, "A-z_0.9@host:1"])
def test_valid_user_header_edges(server: FaztServer, value: str) -> None:
    ok(server, value, "kv", "user.set", "edge", value)
    assert ok(server, value, "kv", "user.get", "edge") == value


def test_a_server_without_the_setting_ignores_the_header(plain_server: FaztServer) -> None:
    for cap, name, args in USER_CALLS:
        r = uncaught(plain_server, "alice", cap, name, *args)
        assert_error(r, 401, "auth_required")
    # not even a bad value is looked at
    r = call(plain_server, APP, "POST", "/api/op",
             json={"cap": "kv", "op": "set", "args": ["k", 1]}, headers={HEADER: "has space"})
    assert r.status_code == 200 and r.json()["ok"], r.text


def test_production_refuses_the_test_user_header(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = subprocess.run(
        [sys.executable, "-m", "fazt", "run", "--port", str(free_port()), "--data-dir",
         str(data)], env=clean_env(FAZT_PRODUCTION="1", FAZT_TEST_USER_HEADER="1"),
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, (out.stdout, out.stderr)
    message = out.stdout + out.stderr
    assert "test_user_header" in message and "production" in message, message
    assert "Traceback" not in message, message
