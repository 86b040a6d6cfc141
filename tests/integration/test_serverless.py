"""Serverless handlers (api/main.js) against a real `fazt run`: the request the handler sees,
the responses it may give, what is refused, limits, logs, redeploys and worker clean-up.

Requests go to 127.0.0.1 with ``Host: <app>.localhost`` (Python's resolver does not resolve
``*.localhost``). Every wait is a bounded poll on a condition.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import FaztServer, call, clean_env, deploy, start_server

pytestmark = pytest.mark.integration

JS_ERROR_MESSAGE = "the app's handler failed; its log has the details (fazt app logs APP)"
LOG_WAIT_S = 5.0        # log lines are written in batches, about every 0.1 s
EXIT_WAIT_S = 10.0      # workers must be gone this long after the server is


# -- helpers ------------------------------------------------------------------------------------

def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == r.headers["x-request-id"]
    return error


def log_lines(server: FaztServer, app: str, **params: Any) -> list[dict[str, Any]]:
    with server.admin() as admin:
        r = admin.get(f"/api/apps/{app}/logs", params={"n": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()["lines"]


def wait_for_log(server: FaztServer, app: str, predicate: Callable[[dict[str, Any]], bool],
                 *, timeout_s: float = LOG_WAIT_S, **params: Any) -> dict[str, Any]:
    """The first of the app's log lines matching ``predicate``, polling up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = log_lines(server, app, **params)
        for line in lines:
            if predicate(line):
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no matching log line for {app} within {timeout_s} s: {lines}")
        time.sleep(0.05)   # polling for a condition


def warm_up(server: FaztServer, app: str, *, timeout_s: float = 15.0) -> None:
    """Poll ``/api/ok`` until the app's worker answers "ok"."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = call(server, app, "GET", "/api/ok")
        if r.status_code == 200 and r.text == "ok":
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{app} did not answer within {timeout_s} s: {r.status_code} {r.text}")
        time.sleep(0.05)   # polling for a condition


def rid() -> str:
    return "t-" + uuid.uuid4().hex[:16]


# -- the bundled example ------------------------------------------------------------------------

def test_hello_example_api(server: FaztServer) -> None:
    r = call(server, "hello", "GET", "/api/hello", params={"name": "x-7f3e"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert "x-7f3e" in body["message"]
    assert body["requestId"] == r.headers["x-request-id"]
    assert body["method"] == "GET"
    assert body["path"] == "/api/hello"
    assert 0 < body["msLeft"] <= 10_000

    # one handler answers every path under /api/
    other = call(server, "hello", "GET", "/api/anything/at/all")
    assert other.status_code == 200, other.text
    assert other.json()["path"] == "/api/anything/at/all"
    assert "Hello, world!" in other.json()["message"]

    # a request id sent by the client is the one the handler sees
    mine = call(server, "hello", "GET", "/api/hello", headers={"x-request-id": "mine-123"})
    assert mine.headers["x-request-id"] == "mine-123"
    assert mine.json()["requestId"] == "mine-123"


def test_app_without_api_main_is_404(server: FaztServer) -> None:
    deploy(server, "static-only", {"index.html": "static", "api/notes.txt": "not served"})
    for path in ("/api/x", "/api/", "/api/notes.txt"):
        error = assert_error(call(server, "static-only", "GET", path), 404, "not_found")
        assert "api/main.js" in error["message"]
    assert call(server, "static-only", "GET", "/").text == "static"


# -- the request the handler sees ----------------------------------------------------------------

ECHO_JS = """\
module.exports = async function (request, { log }) {
  log.info(`echo ${request.method} ${request.path}`);
  if (request.path === '/api/echo') return { json: request.body };
  if (request.path === '/api/raw') {
    return { json: { body: request.body, text: request.text(),
                     bytes: Array.from(request.bytes()) } };
  }
  if (request.path === '/api/bytes') return Array.from(request.bytes());
  return {
    json: {
      method: request.method, path: request.path, query: request.query,
      headers: request.headers, cookies: request.cookies, ip: request.ip,
      requestId: request.requestId,
    },
  };
};
"""


@pytest.fixture(scope="module")
def echo(server: FaztServer) -> str:
    deploy(server, "echo", {"api/main.js": ECHO_JS})
    return "echo"


def test_request_fields(server: FaztServer, echo: str) -> None:
    r = call(server, echo, "PUT", "/api/info?a=1&b=x&b=y&c=%C3%BC&empty=",
             headers=[("x-Multi", "one"), ("X-MULTI", "two"), ("cookie", "sid=abc; theme=dark"),
                      ("x-request-id", "fields-1")])
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "PUT"
    assert seen["path"] == "/api/info"
    assert seen["query"] == {"a": "1", "b": ["x", "y"], "c": "ü", "empty": ""}
    assert seen["headers"]["x-multi"] == "one, two"
    assert seen["headers"]["host"] == "echo.localhost"
    assert all(name == name.lower() for name in seen["headers"])
    assert seen["cookies"] == {"sid": "abc", "theme": "dark"}
    assert seen["ip"] == "127.0.0.1"
    assert seen["requestId"] == "fields-1"


def test_post_json_round_trip(server: FaztServer, echo: str) -> None:
    value = {"name": "ü ☃", "list": [1, 2.5, None, True], "nested": {"a": {"b": []}}}
    r = call(server, echo, "POST", "/api/echo", json=value)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == value

    # +json types are parsed too; other types arrive as text
    r = call(server, echo, "PATCH", "/api/raw", content=b'{"op": "x"}',
             headers={"content-type": "application/merge-patch+json; charset=utf-8"})
    assert r.json()["body"] == {"op": "x"}
    assert r.json()["text"] == '{"op": "x"}'
    r = call(server, echo, "POST", "/api/raw", content=b'{"op": "x"}',
             headers={"content-type": "text/plain"})
    assert r.json()["body"] == '{"op": "x"}'

    # no body: null, text() null, bytes() empty
    r = call(server, echo, "POST", "/api/raw")
    assert r.json() == {"body": None, "text": None, "bytes": []}


def test_invalid_json_is_refused_before_the_handler_runs(server: FaztServer, echo: str) -> None:
    refused = rid()
    r = call(server, echo, "POST", "/api/echo", content=b'{"a": 1,',
             headers={"content-type": "application/json", "x-request-id": refused})
    assert_error(r, 400, "invalid_json")

    # Log lines are written in order: once a later request's line is there, any line of the
    # refused request would be there too.
    later = rid()
    assert call(server, echo, "GET", "/api/later", headers={"x-request-id": later}) \
        .status_code == 200
    wait_for_log(server, echo, lambda line: line["request_id"] == later)
    assert not [line for line in log_lines(server, echo) if line["request_id"] == refused]


def test_non_utf8_body_is_bytes_only(server: FaztServer, echo: str) -> None:
    data = bytes([0xFF, 0xFE, 0x00, 0x80, 0x41, 0xC3, 0x28, 0x0A])
    r = call(server, echo, "POST", "/api/raw", content=data,
             headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.json() == {"body": None, "text": None, "bytes": list(data)}
    # even when it claims to be JSON: no invalid_json, the handler gets the bytes
    r = call(server, echo, "POST", "/api/bytes", content=data,
             headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == list(data)


# -- request body limits -------------------------------------------------------------------------

BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def small_body_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztServer]:
    srv = start_server(tmp_path_factory.mktemp("small-body") / "data",
                       env={"FAZT_MAX_API_BODY_BYTES": str(BODY_LIMIT)})
    deploy(srv, "echo", {"api/main.js": ECHO_JS})
    yield srv
    srv.stop()


def test_body_at_the_limit_is_accepted(small_body_server: FaztServer) -> None:
    data = b"a" * BODY_LIMIT
    r = call(small_body_server, "echo", "POST", "/api/bytes", content=data)
    assert r.status_code == 200, r.text
    assert len(r.json()) == BODY_LIMIT


def test_body_over_the_limit_with_content_length(small_body_server: FaztServer) -> None:
    r = call(small_body_server, "echo", "POST", "/api/echo", content=b"a" * (BODY_LIMIT + 1))
    error = assert_error(r, 413, "payload_too_large")
    assert str(BODY_LIMIT) in error["message"]


def test_body_over_the_limit_chunked(small_body_server: FaztServer) -> None:
    chunks = [b"b" * 1024] * (BODY_LIMIT // 1024 + 2)
    request = httpx.Request("POST", f"{small_body_server.url}/api/echo",
                            headers={"host": "echo.localhost"}, content=iter(chunks))
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    with httpx.Client(timeout=30, trust_env=False) as client:
        r = client.send(request)
    assert_error(r, 413, "payload_too_large")
    # the server still serves
    assert call(small_body_server, "echo", "GET", "/api/x").status_code == 200


# -- responses -----------------------------------------------------------------------------------

SPEC_JS = """\
module.exports = async function (request) {
  const q = request.query;
  switch (request.path) {
    case '/api/created':
      return { status: 201, headers: { 'X-Custom': 'yes', 'x-list': ['a', 'b'] },
               json: { ok: true } };
    case '/api/text': return 'plain text ü';
    case '/api/bytes': return new Uint8Array([0, 1, 2, 254, 255]);
    case '/api/buffer': return new Uint8Array([9, 8, 7]).buffer;
    case '/api/nothing': return undefined;
    case '/api/null': return null;
    case '/api/array': return [1, 'two'];
    case '/api/data': return { status: 'active', count: 2 };
    case '/api/typed': return { headers: { 'content-type': 'text/csv' }, body: 'a,b\\n' };
    case '/api/cookies':
      return { body: 'ok', cookies: {
        sid: 'abc123',
        theme: { value: 'dark', maxAge: 3600, httpOnly: false, sameSite: 'strict',
                 secure: true },
        old: null,
      } };
    case '/api/header': return { headers: { [q.name]: 'x' }, body: 'set ' + q.name };
    case '/api/status':
      return { status: q.kind === 'number' ? Number(q.s) : q.s, body: 'status' };
    case '/api/crlf':
      return { headers: { 'x-a': 'v\\r\\nx-injected: 1' }, body: 'split' };
    case '/api/lf':
      return { headers: { 'x-a': 'v\\nx-injected: 1' }, body: 'split' };
  }
  return 'default';
};
"""


@pytest.fixture(scope="module")
def spec(server: FaztServer) -> str:
    deploy(server, "spec", {"api/main.js": SPEC_JS})
    return "spec"


def test_response_spec_status_headers_json(server: FaztServer, spec: str) -> None:
    r = call(server, spec, "GET", "/api/created")
    assert r.status_code == 201, r.text
    assert r.headers["x-custom"] == "yes"
    assert r.headers.get_list("x-list") == ["a", "b"]
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"ok": True}
    assert r.headers["x-content-type-options"] == "nosniff"


def test_response_shapes(server: FaztServer, spec: str) -> None:
    r = call(server, spec, "GET", "/api/text")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == "plain text ü"

    for path, data in (("/api/bytes", bytes([0, 1, 2, 254, 255])),
                       ("/api/buffer", b"\x09\x08\x07")):
        r = call(server, spec, "GET", path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.content == data
        assert r.headers["content-length"] == str(len(data))

    for path in ("/api/nothing", "/api/null"):
        r = call(server, spec, "GET", path)
        assert r.status_code == 204, r.text
        assert r.content == b""
        assert "content-type" not in r.headers

    assert call(server, spec, "GET", "/api/array").json() == [1, "two"]
    # a status that is not a number: plain data, not a response spec
    r = call(server, spec, "GET", "/api/data")
    assert r.status_code == 200
    assert r.json() == {"status": "active", "count": 2}

    r = call(server, spec, "GET", "/api/typed")
    assert r.headers["content-type"] == "text/csv"
    assert r.text == "a,b\n"

    # HEAD: the handler runs, the body is dropped
    r = call(server, spec, "HEAD", "/api/text")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len("plain text ü".encode()))


def test_cookies(server: FaztServer, spec: str) -> None:
    r = call(server, spec, "GET", "/api/cookies")
    assert r.status_code == 200, r.text
    assert r.headers.get_list("set-cookie") == [
        "sid=abc123; Path=/; HttpOnly; SameSite=Lax",
        "theme=dark; Path=/; Max-Age=3600; Secure; SameSite=Strict",
        "old=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax",
    ]


@pytest.mark.parametrize("name", ["content-length", "set-cookie", "x-request-id",
                                  "Transfer-Encoding"])
def test_reserved_header_is_a_js_error(server: FaztServer, spec: str, name: str) -> None:
    request_id = rid()
    r = call(server, spec, "GET", "/api/header", params={"name": name},
             headers={"x-request-id": request_id})
    error = assert_error(r, 500, "js_error")
    assert error["message"] == JS_ERROR_MESSAGE
    assert r.headers["x-request-id"] == request_id
    line = wait_for_log(server, spec, lambda line: line["request_id"] == request_id)
    assert line["level"] == "error"
    assert f"may not set the {name.lower()} header" in line["message"]


@pytest.mark.parametrize(("status", "kind"), [("99", "number"), ("700", "number"),
                                              ("x", "string"), ("200.5", "number"),
                                              ("200", "string")])
def test_invalid_status_is_a_js_error(server: FaztServer, spec: str, status: str,
                                      kind: str) -> None:
    request_id = rid()
    r = call(server, spec, "GET", "/api/status", params={"s": status, "kind": kind},
             headers={"x-request-id": request_id})
    assert_error(r, 500, "js_error")
    line = wait_for_log(server, spec, lambda line: line["request_id"] == request_id)
    assert "200-599" in line["message"]


def test_status_in_range_is_used(server: FaztServer, spec: str) -> None:
    for status in (200, 404, 418, 599):
        r = call(server, spec, "GET", "/api/status", params={"s": str(status), "kind": "number"})
        assert r.status_code == status
        assert r.text == "status"


@pytest.mark.parametrize("path", ["/api/crlf", "/api/lf"])
def test_header_splitting_is_blocked(server: FaztServer, spec: str, path: str) -> None:
    r = call(server, spec, "GET", path)
    assert_error(r, 500, "js_error")
    assert "x-injected" not in r.headers
    assert "x-a" not in r.headers


# -- errors thrown by the handler ----------------------------------------------------------------

THROW_JS = """\
const SECRET = 'boom-' + 'c0ffee';
module.exports = async function (request) {
  if (request.path === '/api/reject') return Promise.reject(new TypeError('rejected ' + SECRET));
  if (request.path === '/api/value') throw 'a plain string';
  throw new Error('exploded ' + SECRET);
};
"""


def test_thrown_error_is_a_generic_500_and_logged_with_its_line(server: FaztServer) -> None:
    deploy(server, "thrower", {"api/main.js": THROW_JS})
    for path, expected in (("/api/boom", "uncaught Error: exploded boom-c0ffee"),
                           ("/api/reject", "uncaught TypeError: rejected boom-c0ffee"),
                           ("/api/value", "uncaught thrown value: a plain string")):
        request_id = rid()
        r = call(server, "thrower", "GET", path, headers={"x-request-id": request_id})
        error = assert_error(r, 500, "js_error")
        assert error["message"] == JS_ERROR_MESSAGE
        for leak in ("boom-c0ffee", "/work", "site-packages", ".py", "main.js", "Traceback",
                     "Error:"):
            assert leak not in r.text, (leak, r.text)
        line = wait_for_log(server, "thrower", lambda line, request_id=request_id:
                            line["request_id"] == request_id)
        assert line["level"] == "error"
        assert line["message"].startswith(expected), line
    line = wait_for_log(server, "thrower", lambda line: "exploded" in line["message"])
    assert "api/main.js:5" in line["message"], line


def test_load_failure_is_a_js_error_and_logged(server: FaztServer) -> None:
    deploy(server, "broken", {"api/main.js": "module.exports = async function ( {\n"})
    r = call(server, "broken", "GET", "/api/x")
    assert_error(r, 500, "js_error")
    line = wait_for_log(server, "broken",
                        lambda line: "loading api/main.js failed" in line["message"])
    assert line["level"] == "error"
    deploy(server, "broken", {"api/main.js": "module.exports = async () => 'fixed';\n"})
    assert call(server, "broken", "GET", "/api/x").text == "fixed"


# -- modules ---------------------------------------------------------------------------------------

def test_esm_and_require(server: FaztServer) -> None:
    deploy(server, "modules", {
        "api/main.js": (
            "import { greet } from './lib/greet.js';\n"
            "import config from './config.json';\n"
            "import * as util from './lib';\n"
            "export default async function (request) {\n"
            "  let fs;\n"
            "  try { require('fs'); } catch (e) { fs = e.message; }\n"
            "  return { json: { greeting: greet(config.name), twice: util.twice(2), fs } };\n"
            "}\n"),
        "api/lib/greet.js": "export const greet = (name) => `hi ${name}`;\n",
        "api/lib/index.js": "exports.twice = (n) => n * 2;\n",
        "api/config.json": '{"name": "modules"}',
    })
    r = call(server, "modules", "GET", "/api/")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["greeting"] == "hi modules"
    assert body["twice"] == 4
    assert "only the app's own modules under api/" in body["fs"]


# -- limits ----------------------------------------------------------------------------------------

SPIN_JS = """\
module.exports = async function (request) {
  if (request.path === '/api/spin') { while (true) {} }
  if (request.path === '/api/bomb') {
    const hoard = [];
    while (true) hoard.push(new Array(1e5).fill(1.5));
  }
  return 'ok';
};
"""


def test_endless_loop_is_a_js_timeout(server: FaztServer) -> None:
    deploy(server, "spin", {"api/main.js": SPIN_JS,
                            "manifest.json": json.dumps({"limits": {"request_ms": 500}})})
    # The app's first request waits for a worker to load its code, and that wait counts
    # against its 500 ms: under load it can be a js_timeout. Warm the app up first.
    warm_up(server, "spin")
    for _ in range(2):
        started = time.monotonic()
        r = call(server, "spin", "GET", "/api/spin")
        elapsed = time.monotonic() - started
        error = assert_error(r, 504, "js_timeout")
        assert error["message"] == "the request ran out of time"
        assert 0.3 < elapsed < 1.5, elapsed
        ok = call(server, "spin", "GET", "/api/ok")
        assert ok.status_code == 200, ok.text
        assert ok.text == "ok"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_memory_bomb_is_js_memory_and_spares_the_server(server: FaztServer) -> None:
    deploy(server, "bomb", {"api/main.js": SPIN_JS,
                            "manifest.json": json.dumps({"limits": {"memory_mb": 128}})})
    warm_up(server, "bomb")
    before = _rss_kib(server.proc.pid)
    r = call(server, "bomb", "GET", "/api/bomb")
    error = assert_error(r, 503, "js_memory")
    assert error["message"] == "the app's handler ran out of memory"
    grown_mib = (_rss_kib(server.proc.pid) - before) / 1024
    assert grown_mib < 50, f"the server process grew by {grown_mib:.0f} MiB"
    ok = call(server, "bomb", "GET", "/api/ok")
    assert ok.status_code == 200, ok.text
    assert ok.text == "ok"


def test_manifest_limits_are_validated(server: FaztServer) -> None:
    for limits in ({"request_ms": 5}, {"memory_mb": 32}, {"memory_mb": "big"},
                   {"cpu": 1}):
        r = server.deploy("bad-limits", {"api/main.js": "module.exports = () => 1;",
                                         "manifest.json": json.dumps({"limits": limits})})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_manifest"


# -- deploys ---------------------------------------------------------------------------------------

def test_redeploy_serves_the_new_code_at_once(server: FaztServer) -> None:
    main = "const { version } = require('./version.js');\nmodule.exports = async () => version;\n"
    deploy(server, "versions", {"api/main.js": main, "api/version.js": "exports.version = 'v1';"})
    for _ in range(3):
        assert call(server, "versions", "GET", "/api/v").text == "v1"
    # only the required module changes
    deploy(server, "versions", {"api/main.js": main, "api/version.js": "exports.version = 'v2';"})
    for _ in range(3):
        assert call(server, "versions", "GET", "/api/v").text == "v2"
    with server.admin() as admin:
        assert admin.post("/api/apps/versions/rollback").status_code == 200
    assert call(server, "versions", "GET", "/api/v").text == "v1"


# -- logs and the CLI ------------------------------------------------------------------------------

def test_cli_prints_the_handler_log_lines(server: FaztServer) -> None:
    name = "cli-" + uuid.uuid4().hex[:8]
    request_id = rid()
    r = call(server, "hello", "GET", "/api/hello", params={"name": name},
             headers={"x-request-id": request_id})
    assert r.status_code == 200, r.text
    wait_for_log(server, "hello", lambda line: line["request_id"] == request_id)

    out = subprocess.run(
        [sys.executable, "-m", "fazt", "app", "logs", "hello", "-n", "5", "--url", server.url,
         "--token", server.token],
        env=clean_env(), text=True, capture_output=True, timeout=60, cwd=server.data_dir.parent)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if request_id in line)
    assert f"INFO [{request_id}] greeting {name}" in line


def test_console_and_log_levels(server: FaztServer) -> None:
    deploy(server, "logger", {"api/main.js": """\
console.log('at load time');
module.exports = async function (request, { log }) {
  console.log('console.log', { a: 1 }, [2]);
  console.debug('console.debug');
  console.warn('console.warn');
  console.error(new RangeError('console.error'));
  log.info('log.info');
  log.error('x'.repeat(10000));
  if (request.query.many) for (let i = 0; i < 1100; i++) log.debug('line ' + i);
  return 'logged';
};
"""})
    request_id = rid()
    assert call(server, "logger", "GET", "/api/x", params={"many": "1"},
                headers={"x-request-id": request_id}).text == "logged"
    wait_for_log(server, "logger", lambda line: "per request reached" in line["message"])
    # n is at most 1000: the oldest 1000 lines of the request, then the newest 1000
    first = log_lines(server, "logger", request_id=request_id, after=0)
    by_message = {line["message"].split("\n")[0][:40]: line["level"] for line in first}
    assert by_message["console.log {\"a\":1} [2]"] == "info"
    assert by_message["console.debug"] == "debug"
    assert by_message["console.warn"] == "warn"
    assert by_message["RangeError: console.error"] == "error"
    assert by_message["log.info"] == "info"
    long = next(line["message"] for line in first if line["message"].startswith("xxx"))
    assert 8192 <= len(long) <= 8193, len(long)
    # 6 lines, then 994 of the 1100 debug lines: 1000 per request, then one warning
    last = log_lines(server, "logger", request_id=request_id)
    assert last[-2]["message"] == "line 993"
    assert last[-1]["level"] == "warn"
    assert "log limit of 1000 lines per request reached" in last[-1]["message"]
    assert len({line["id"] for line in first} | {line["id"] for line in last}) == 1001
    loaded = log_lines(server, "logger", after=0)
    assert any(line["message"] == "at load time" and line["request_id"] is None
               for line in loaded)


# -- no orphan workers -----------------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()   # the command name may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def _children(parent: int) -> dict[int, int]:
    """pid -> start time of every live child of ``parent``."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == parent and stat[0] != "Z":
                out[int(entry)] = stat[2]
    return out


def _alive(pid: int, started: int) -> bool:
    stat = _stat(pid)
    # a zombie is dead (only its exit status is left); another start time is another process
    return stat is not None and stat[0] != "Z" and stat[2] == started


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_do_not_outlive_the_server(tmp_path: Path, sig: signal.Signals) -> None:
    srv = start_server(tmp_path / "data")
    try:
        deploy(srv, "one", {"api/main.js": "module.exports = async () => 'one';"})
        assert call(srv, "one", "GET", "/api/x").text == "one"
        assert call(srv, "hello", "GET", "/api/hello").status_code == 200
        workers = _children(srv.proc.pid)
        for pid in workers:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert b"fazt.sandbox.worker" in cmdline, cmdline
        assert len(workers) >= 2, workers
    finally:
        code = srv.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0, srv.output()
    deadline = time.monotonic() + EXIT_WAIT_S
    while True:
        left = [pid for pid, started in workers.items() if _alive(pid, started)]
        if not left:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"JS workers {left} outlived the server ({sig.name}) by {EXIT_WAIT_S} s")
        time.sleep(0.05)   # polling for a condition
