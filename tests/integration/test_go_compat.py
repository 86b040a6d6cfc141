"""The Go fazt compatibility mode against a real `fazt run`: apps written for the Go fazt (a
manifest without "capabilities", an api/main.js script that exports nothing) run unchanged,
with the Go globals ``request``, ``respond``, ``fazt`` and ``require`` and synchronous storage.

One server for the module (with ``test_user_header`` and ``chaos``), many apps deployed into it
at start-up. Requests go to 127.0.0.1 with ``Host: <app>.localhost``; there are no sleeps (log
lines, which are written after the response, are polled for, bounded).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import REPO, FaztServer, call, deploy, start_server

pytestmark = pytest.mark.integration

USER = "x-fazt-test-user"
LOG_WAIT_S = 10.0
SLACK_S = 0.25            # what a timed-out response may take beyond its request budget

# -- the apps ------------------------------------------------------------------------------------

# 1. A todo API as the Go fazt's own template wrote them: a handler function and
#    `handler(request)` as the last statement, ids made in JS, synchronous fazt.storage.ds.
TODOS_JS = """\
// Todos API - serverless function for fazt (Go).
// GET /api/todos, GET /api/todos/:id, POST /api/todos, PUT /api/todos/:id, DELETE /api/todos/:id
var ds = fazt.storage.ds;
var COLLECTION = 'todos';

function generateId() {
  return Date.now().toString(36) + Math.random().toString(36).substr(2, 9);
}

function handler(req) {
  var parts = req.path.split('/').filter(function (p) { return p !== ''; });
  var id = parts.length > 2 ? parts[2] : null;

  if (parts[1] !== 'todos') {
    return respond(404, { error: 'Not found' });
  }

  if (req.method === 'GET' && !id) {
    var query = {};
    if (req.query.done) query.done = req.query.done === 'true';
    var todos = ds.find(COLLECTION, query);
    return respond({ todos: todos, count: ds.count(COLLECTION, query) });
  }

  if (req.method === 'GET') {
    var todo = ds.findOne(COLLECTION, id);
    if (!todo) return respond(404, { error: 'Todo not found' });
    return respond(todo);
  }

  if (req.method === 'POST' && !id) {
    var body = req.body || {};
    if (!body.title) return respond(400, { error: 'title is required' });
    var doc = { id: generateId(), title: body.title, done: false, tags: body.tags || [] };
    var newId = ds.insert(COLLECTION, doc);
    return respond(201, { id: newId, todo: ds.findOne(COLLECTION, newId) });
  }

  if (req.method === 'PUT' && id) {
    var changes = req.body || {};
    var updated = ds.update(COLLECTION, { id: id }, changes);
    if (updated === 0) return respond(404, { error: 'Todo not found' });
    return respond(ds.findOne(COLLECTION, id));
  }

  if (req.method === 'DELETE' && id) {
    var deleted = ds.delete(COLLECTION, { id: id });
    if (deleted === 0) return respond(404, { error: 'Todo not found' });
    return respond(204);
  }

  return respond(405, { error: 'Method not allowed' }, { 'Allow': 'GET, POST, PUT, DELETE' });
}

handler(request);
"""

# 2. A knowledge base in the style of the Go fazt's KB templates: top-level `return respond()`,
#    pages per session, a kv cache with a ttl, and a bare `respond(404, ...)` at the end.
KB_JS = """\
var ds = fazt.storage.ds;
var kv = fazt.storage.kv;
var parts = request.path.split('/').filter(function (p) { return p; });
var resource = parts[1];
var pageId = parts[2];
var session = request.query.session || null;

if (!session) return respond(400, { error: 'session is required' });

if (resource === 'pages' && !pageId) {
  if (request.method === 'GET') {
    var cacheKey = 'pages:' + session;
    var cached = kv.get(cacheKey);
    if (cached !== undefined) return respond({ pages: cached, cached: true });
    var pages = ds.find('pages', { session: session }, { order: 'asc' });
    kv.set(cacheKey, pages, 60000);
    return respond({ pages: pages, cached: false });
  }
  if (request.method === 'POST') {
    var b = request.body || {};
    if (!b.title) return respond(400, { error: 'title is required' });
    var id = ds.insert('pages', { session: session, title: b.title, content: b.content || '',
                                  views: 0 });
    kv.delete('pages:' + session);
    return respond(201, ds.findOne('pages', id));
  }
}

if (resource === 'pages' && pageId) {
  var page = ds.findOne('pages', { id: pageId, session: session });
  if (!page) return respond(404, { error: 'Page not found' });
  if (request.method === 'GET') {
    ds.update('pages', { id: pageId }, { $inc: { views: 1 } });
    return respond(ds.findOne('pages', pageId));
  }
  if (request.method === 'PUT') {
    var changes = request.body || {};
    var ops = { $set: { title: changes.title || page.title } };
    if (changes.clear) ops.$unset = { content: 1 };
    ds.update('pages', { id: pageId }, ops);
    kv.delete('pages:' + session);
    return respond(ds.findOne('pages', pageId));
  }
  if (request.method === 'DELETE') {
    ds.delete('pages', { id: pageId });
    kv.delete('pages:' + session);
    return respond({ deleted: pageId });
  }
}

if (resource === 'cache') return respond(kv.list('pages:' + session));

respond(404, {error: 'Not found'})
"""

# 3. The request as the script sees it (bytes of uploaded files summed, not sent back).
ECHO_JS = """\
function describeFiles(files) {
  var out = {};
  for (var name in files) {
    var f = files[name];
    var bytes = new Uint8Array(f.data);
    var sum = 0;
    for (var i = 0; i < bytes.length; i++) sum = (sum + bytes[i] * (i % 7 + 1)) % 1000000007;
    out[name] = { name: f.name, type: f.type, size: f.size, isArrayBuffer:
                  f.data instanceof ArrayBuffer, length: bytes.length, sum: sum };
  }
  return out;
}
respond({
  method: request.method, path: request.path, query: request.query,
  headers: request.headers, keys: Object.keys(request.headers),
  lower: { contentType: request.headers['content-type'] || null,
           custom: request.headers['x-custom-thing'] || null },
  body: request.body, hasFiles: 'files' in request,
  files: request.files ? describeFiles(request.files) : null
})
"""

# 4. Every respond() form and body encoding, one per path.
RESPOND_JS = """\
var p = request.path.slice('/api/'.length);
var out;
if (p === 'empty') out = respond();
else if (p === 'status') out = respond(201);
else if (p === 'body') out = respond({ a: 1, list: [1, 2] });
else if (p === 'string') out = respond('plain text');
else if (p === 'full') out = respond(202, 'text body',
                                     { 'Content-Type': 'text/plain', 'X-Count': 7 });
else if (p === 'object') out = ({ hello: 'world' });
else if (p === 'shaped') out = ({ status: 418, body: { tea: true }, headers: { 'X-Tea': 'yes' } });
else if (p === 'bare-string') out = 'just a string';
else if (p === 'number') out = 42;
else if (p === 'undefined') out = undefined;
else if (p === 'null') out = null;
else if (p === 'no-content') out = respond(204, { ignored: true });
else if (p === 'looks-base64') out = respond(200, 'SGVsbG8=', { 'Content-Type': 'text/plain' });
else if (p === 'uint8') out = respond(200, new Uint8Array([0, 1, 2, 255]),
                                      { 'Content-Type': 'application/octet-stream' });
else if (p === 'buffer') out = respond(200, new Uint8Array([9, 8, 7]).buffer,
                                       { 'Content-Type': 'application/octet-stream' });
else if (p === 'html') out = respond(200, '<h1>hi</h1>', { 'Content-Type': 'text/html' });
else if (p === 'cookie') out = respond(200, { ok: 1 }, { 'Set-Cookie': 'sid=abc; Path=/' });
else out = respond(404, { error: 'Not found' });
out
"""

# 5. Files: uploads stored in s3 and served back with their type (the Go fazt's passthrough).
FILES_JS = """\
var s3 = fazt.storage.s3;

function handler(req) {
  if (req.method === 'POST' && req.path === '/api/upload') {
    var file = req.files && req.files.file;
    if (!file) return respond(400, { error: 'no file' });
    var path = 'uploads/' + (req.body && req.body.folder ? req.body.folder + '/' : '') + file.name;
    s3.put(path, file.data, file.type);
    return respond(201, { path: path, size: file.size });
  }
  if (req.method === 'POST' && req.path === '/api/generate') {
    var bytes = new Uint8Array(256);
    for (var i = 0; i < 256; i++) bytes[i] = 255 - i;
    s3.put('/generated/all.bin', bytes, 'application/x-all-bytes');
    return respond(201, { size: bytes.length });
  }
  if (req.method === 'GET' && req.path === '/api/file') {
    var blob = s3.get(req.query.path);
    if (!blob) return respond(404, { error: 'File not found' });
    return respond(200, blob.data, { 'Content-Type': blob.mime });
  }
  if (req.method === 'GET' && req.path === '/api/meta') {
    return respond(s3.get(req.query.path));
  }
  if (req.method === 'GET' && req.path === '/api/raw-data') {
    // the blob's base64 text with a JSON type is sent as it is
    return respond(200, s3.get(req.query.path).data);
  }
  return respond(404, { error: 'Not found' });
}
handler(request)
"""

# 6. Storage: one method per request (`POST /api/op` {call: "storage.kv.get", args}), a list
#    of them in one request (`/api/ops`), and bulk fills made in one request.
STORE_JS = """\
function resolve(call) {
  var dot = call.lastIndexOf('.');
  var obj = call.slice(0, dot).split('.').reduce(function (o, k) { return o[k]; }, fazt);
  return { obj: obj, name: call.slice(dot + 1) };
}
function run(op) {
  var t = resolve(op.call);
  if (typeof t.obj[t.name] !== 'function') throw new Error(op.call + ' is not a function');
  var result = t.obj[t.name].apply(t.obj, op.args || []);
  return result === undefined ? '<undefined>' : result;
}
var body = request.body || {};
var p = request.path;
if (p === '/api/op') {
  if (body.uncaught) return respond({ result: run(body) });
  try { return respond({ ok: true, result: run(body) }); }
  catch (e) { return respond({ ok: false, code: e.code || null, message: String(e.message) }); }
}
if (p === '/api/ops') return respond(body.ops.map(run));
if (p === '/api/kv-fill') {
  var kv = fazt.storage.kv;
  for (var i = 0; i < body.n; i++) kv.set(body.prefix + ('0000' + i).slice(-4), i);
  var listed = kv.list(body.prefix);
  return respond({ length: listed.length, first: listed[0], last: listed[listed.length - 1],
                   sorted: listed.every(function (it, j) {
                     return j === 0 || listed[j - 1].key < it.key;
                   }),
                   other: fazt.app.kv.list(body.prefix).length });
}
if (p === '/api/ds-fill') {
  var ds = fazt.storage.ds;
  for (var k = 0; k < body.n; k++) ds.insert(body.coll, { i: k, even: k % 2 === 0 });
  return respond({ count: ds.count(body.coll) });
}
if (p === '/api/ds-read') {
  var d = fazt.storage.ds;
  function seq(docs) { return docs.map(function (x) { return x.i; }); }
  function created(docs) { return docs.map(function (x) { return x._createdAt; }); }
  var all = d.find(body.coll);
  var asc = d.find(body.coll, {}, { order: 'asc' });
  return respond({
    all: seq(all), allCreated: created(all), asc: seq(asc), ascCreated: created(asc),
    limited: seq(d.find(body.coll, {}, { limit: 1050, order: 'asc' })),
    paged: seq(d.find(body.coll, {}, { limit: 3, offset: 1000, order: 'asc' })),
    evens: d.find(body.coll, { even: true }).length,
    countEven: d.count(body.coll, { even: true }),
    keys: Object.keys(all[0]).sort()
  });
}
respond(404, { error: 'Not found' })
"""

# 7. fazt.app/env/version/log, the unavailable namespaces, and require().
UTIL_JS = """\
// api/util.js: a module of a Go fazt app
fazt.storage.kv.increment('util-evaluations');
module.exports = {
  double: function (x) { return x * 2; },
  seenPath: request.path,
  token: Math.random(),
  reply: function (body) { return respond(200, body); }
};
"""
MISC_JS = """\
var p = request.path.slice('/api/'.length);
if (p === 'info') {
  return respond({ id: fazt.app.id, name: fazt.app.name, version: fazt.version,
                   versionType: typeof fazt.version });
}
if (p === 'env') {
  return respond({ greeting: fazt.env.get('GREETING', 'fallback'),
                   hasGreeting: fazt.env.has('GREETING'),
                   missing: fazt.env.get('NOT_SET_ANYWHERE', 'fallback'),
                   missingNoDefault: fazt.env.get('NOT_SET_ANYWHERE') === undefined,
                   hasMissing: fazt.env.has('NOT_SET_ANYWHERE'),
                   other: fazt.env.get('OTHER', null) });
}
if (p === 'log') {
  fazt.log.info('go-log ' + request.query.tag);
  console.log('go-console ' + request.query.tag);
  return respond({ logged: true });
}
if (p === 'unavailable') {
  var path = request.query.name.split('.');
  var target = path.slice(0, -1).reduce(function (o, k) { return o[k]; }, { fazt: fazt });
  var name = path[path.length - 1];
  try { target[name]; return respond({ threw: false }); }
  catch (e) { return respond({ threw: true, code: e.code, message: e.message,
                               isError: e instanceof Error }); }
}
if (p === 'unavailable-typeof') {
  return respond({ auth: typeof fazt.auth, net: typeof fazt.net, media: typeof fazt.app.media,
                   json: JSON.stringify({ a: fazt.auth, n: fazt.net }) });
}
if (p === 'uncaught-unavailable') return fazt.auth.getUser();
if (p === 'require') {
  var a = require('./util.js');
  var b = require('util.js');
  var c = require('./util');
  var lib = require('lib/strings.js');
  return a.reply({ doubled: a.double(21), sameModule: a === b && b === c, seenPath: a.seenPath,
                   token: a.token, shout: lib.shout('hey'), data: require('./data.json'),
                   evaluations: fazt.storage.kv.get('util-evaluations') });
}
if (p === 'require-std') {
  try { require(request.query.name); return respond({ threw: false }); }
  catch (e) { return respond({ threw: true, message: e.message }); }
}
if (p === 'require-missing') return require('./nope.js');
respond(404, { error: 'Not found' })
"""
STRINGS_JS = """\
exports.shout = function (s) { return s.toUpperCase() + '!'; };
"""

# 8. Errors: an uncaught throw at a known line, and one inside a required module.
BOOM_JS = """\
function handler(req) {
  if (req.path === '/api/throw') {
    throw new Error('the go script failed on purpose');
  }
  if (req.path === '/api/module') return require('./bad.js').run();
  return respond({ ok: true });
}
handler(request)
"""
BAD_MODULE_JS = """\
exports.run = function () {
  throw new TypeError('a module failed on purpose');
};
"""
SYNTAX_JS = "var a = 1;\nvar b = 2;\nvar c = ;\nrespond({ a: a })\n"
SYNTAX_RETURN_JS = ("var a = 1;\nif (a > 5) return respond({ a: a });\nvar c = ;\n"
                    "respond(404, { error: 'Not found' })\n")

# 9. Timing: a busy loop bounded by Date.now(), and one that never ends.
BUSY_JS = """\
if (request.path === '/api/spin') {
  var end = Date.now() + Number(request.query.ms);
  while (Date.now() < end) {}
}
if (request.path === '/api/forever') { while (true) {} }
if (request.path === '/api/kv') fazt.storage.kv.get('n');
respond({ path: request.path })
"""
SLOW_STORAGE_JS = """\
var hits = fazt.storage.kv.increment('hits');
respond({ hits: hits })
"""

# 10. A modern fazt handler without a capabilities key: not Go mode, nothing granted.
MODERN_JS = """\
module.exports = async function (request, caps) {
  var kv = null;
  try { await caps.kv.get('x'); kv = 'granted'; } catch (e) { kv = e.code; }
  return { json: { modern: true, kv: kv, env: typeof caps.env, fazt: typeof fazt,
                   header: request.headers['user-agent'] ? 'lowercase' : 'other' } };
};
"""
GO_SCRIPT_JS = "respond({ go: true, kv: typeof fazt.storage.kv.get })\n"


# 11. Script shapes: how the script's value is found (completion value, top-level returns).
SHAPES: dict[str, str] = {
    # the completion value is that of handler(request), not of the declaration after it
    "shape-fn-after": ("handler(request);\nfunction handler(req) {\n"
                       "  return respond(201, { path: req.path });\n}\n"),
    "shape-if-else": ("var q = request.query;\nif (q.x) {\n  respond(200, { branch: 'x' });\n"
                      "} else {\n  respond(202, { branch: 'else' });\n}\n"),
    "shape-multiline": ("var items = [1, 2];\nrespond(200, {\n  items: items,\n"
                        "  multi: true\n})\n"),
    "shape-try": ("function handler(req) {\n  if (req.query.fail) throw new Error('nope');\n"
                  "  return respond({ fine: true });\n}\ntry {\n  handler(request)\n"
                  "} catch (e) {\n  respond(500, { error: e.message })\n}\n"),
    "shape-comment": ("function handler(req) { return respond({ commented: true }); }\n"
                      "handler(request) // the Go template's last line\n"
                      "// and a trailing comment\n"),
    "shape-iife": "(function () {\n  var n = 2;\n  return respond({ iife: n });\n})()\n",
    "shape-fresh": ("var state = state || { n: 0 };\nstate.n++;\n"
                    "function handler() { return respond(state); }\nhandler()\n"),
    "shape-return-if": ("if (request.query.a) return respond({ a: true });\n"
                        "if (request.query.b) {\n  respond(418, { b: true })\n}\n"),
    "shape-return-multiline": ("if (request.query.a) return respond({ a: true });\n"
                               "respond(404, {\n  error: 'Not found'\n});\n"),
}

def manifest(**keys: Any) -> str:
    return json.dumps(keys)


APPS: dict[str, dict[str, bytes | str]] = {
    "todos": {"manifest.json": manifest(name="todos"), "api/main.js": TODOS_JS,
              "index.html": "<h1>Todos</h1>"},
    "kb": {"api/main.js": KB_JS},
    "echo": {"api/main.js": ECHO_JS},
    "resp": {"api/main.js": RESPOND_JS},
    "files": {"api/main.js": FILES_JS},
    "store": {"api/main.js": STORE_JS},
    "misc": {"api/main.js": MISC_JS, "api/util.js": UTIL_JS, "api/lib/strings.js": STRINGS_JS,
             "api/data.json": '{"answer": 42}'},
    "boom": {"api/main.js": BOOM_JS, "api/bad.js": BAD_MODULE_JS},
    "syntax": {"api/main.js": SYNTAX_JS},
    "syntaxret": {"api/main.js": SYNTAX_RETURN_JS},
    "busy": {"manifest.json": manifest(limits={"request_ms": 4000}), "api/main.js": BUSY_JS},
    "forever": {"manifest.json": manifest(limits={"request_ms": 800}), "api/main.js": BUSY_JS},
    "slow": {"manifest.json": manifest(limits={"request_ms": 1000}),
             "api/main.js": SLOW_STORAGE_JS},
    "modern": {"api/main.js": MODERN_JS},
    "capsempty": {"manifest.json": manifest(capabilities={}), "api/main.js": GO_SCRIPT_JS},
    **{name: {"api/main.js": source} for name, source in SHAPES.items()},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztServer]:
    srv = start_server(tmp_path_factory.mktemp("gocompat") / "data",
                       env={"FAZT_TEST_USER_HEADER": "1", "FAZT_CHAOS": "1"})
    try:
        for name, files in APPS.items():
            deploy(srv, name, files)
        yield srv
    finally:
        srv.stop()


# -- helpers -------------------------------------------------------------------------------------

def ok_json(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json", r.headers
    return r.json()


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    code: str = r.json()["error"]["code"]
    return code


def op(server: FaztServer, call_name: str, *args: Any, user: str | None = None,
       uncaught: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"call": call_name, "args": list(args)}
    if uncaught:
        body["uncaught"] = True
    return call(server, "store", "POST", "/api/op", json=body,
                headers={USER: user} if user else {})


def res(server: FaztServer, call_name: str, *args: Any, user: str | None = None) -> Any:
    out = ok_json(op(server, call_name, *args, user=user))
    assert out["ok"], out
    return out["result"]


def ops(server: FaztServer, *steps: tuple[Any, ...], user: str | None = None) -> list[Any]:
    r = call(server, "store", "POST", "/api/ops",
             json={"ops": [{"call": s[0], "args": list(s[1:])} for s in steps]},
             headers={USER: user} if user else {})
    result: list[Any] = ok_json(r)
    return result


def rid() -> str:
    return "go-" + uuid.uuid4().hex[:16]


def log_lines(server: FaztServer, app: str, request_id: str) -> list[dict[str, Any]]:
    with server.admin() as admin:
        r = admin.get(f"/api/apps/{app}/logs", params={"n": 1000, "request_id": request_id})
    assert r.status_code == 200, r.text
    lines: list[dict[str, Any]] = r.json()["lines"]
    return lines


def wait_for_log(server: FaztServer, app: str, request_id: str,
                 predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first of the request's log lines matching ``predicate`` (log lines are written
    after the response: polled for, up to LOG_WAIT_S)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        lines = log_lines(server, app, request_id)
        for line in lines:
            if predicate(line):
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no matching log line for {app} [{request_id}]: {lines}")
        time.sleep(0.05)   # polling for a condition, bounded


def load_error_log(server: FaztServer, app: str) -> str:
    """Make a request to an app that fails to load; the log line that says why."""
    request_id = rid()
    r = call(server, app, "GET", "/api/x", headers={"x-request-id": request_id})
    assert error_code(r, 500) == "js_error"
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        with server.admin() as admin:
            lines = admin.get(f"/api/apps/{app}/logs", params={"n": 100}).json()["lines"]
        found: list[str] = [line["message"] for line in lines if "loading" in line["message"]]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            pytest.fail(f"no load error logged for {app}: {lines}")
        time.sleep(0.05)   # polling for a condition, bounded


def app_info(server: FaztServer, app: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.get(f"/api/apps/{app}")
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()
    return info


def warm(server: FaztServer, app: str, path: str = "/api/warm") -> None:
    """Bring the app's first worker up (a spawn can take longer than a small budget)."""
    for _ in range(20):
        if call(server, app, "GET", path).status_code == 200:
            return
    pytest.fail(f"{app} never answered {path}")


# -- 1. unchanged Go fazt apps -------------------------------------------------------------------

GO_ID = re.compile(r"^[0-9a-z]{9,}$")


def test_an_unchanged_go_fazt_crud_app(server: FaztServer) -> None:
    assert app_info(server, "todos")["current"]["runtime"] == "go"
    assert ok_json(call(server, "todos", "GET", "/api/todos")) == {"todos": [], "count": 0}

    created = []
    for title in ("buy milk", "write tests", "ship it"):
        out = ok_json(call(server, "todos", "POST", "/api/todos",
                           json={"title": title, "tags": ["home"]}), 201)
        todo = out["todo"]
        assert out["id"] == todo["id"] and GO_ID.match(todo["id"]), out
        assert todo["title"] == title and todo["done"] is False and todo["tags"] == ["home"]
        assert isinstance(todo["_createdAt"], int) and todo["_createdAt"] == todo["_updatedAt"]
        assert "_id" not in todo
        created.append(todo)
    assert len({t["id"] for t in created}) == 3

    listed = ok_json(call(server, "todos", "GET", "/api/todos"))
    assert listed["count"] == 3
    assert [t["title"] for t in listed["todos"]] == ["ship it", "write tests", "buy milk"]

    first = created[0]["id"]
    assert ok_json(call(server, "todos", "GET", f"/api/todos/{first}")) == created[0]

    # PUT: the body's keys are an implicit $set; the other fields stay
    updated = ok_json(call(server, "todos", "PUT", f"/api/todos/{first}", json={"done": True}))
    assert updated["done"] is True and updated["title"] == "buy milk"
    assert updated["tags"] == ["home"] and updated["id"] == first
    assert updated["_updatedAt"] >= updated["_createdAt"]
    done = ok_json(call(server, "todos", "GET", "/api/todos", params={"done": "true"}))
    assert (done["count"], [t["id"] for t in done["todos"]]) == (1, [first])
    assert ok_json(call(server, "todos", "GET", "/api/todos",
                        params={"done": "false"}))["count"] == 2

    r = call(server, "todos", "DELETE", f"/api/todos/{first}")
    assert (r.status_code, r.content) == (204, b"")
    assert ok_json(call(server, "todos", "GET", f"/api/todos/{first}"), 404) == \
        {"error": "Todo not found"}
    assert ok_json(call(server, "todos", "DELETE", f"/api/todos/{first}"), 404) == \
        {"error": "Todo not found"}
    assert ok_json(call(server, "todos", "PUT", f"/api/todos/{first}", json={"done": False}),
                   404) == {"error": "Todo not found"}
    assert ok_json(call(server, "todos", "GET", "/api/todos"))["count"] == 2

    assert ok_json(call(server, "todos", "POST", "/api/todos", json={}), 400) == \
        {"error": "title is required"}
    r = call(server, "todos", "PATCH", "/api/todos/x")
    assert ok_json(r, 405) == {"error": "Method not allowed"}
    assert r.headers["allow"] == "GET, POST, PUT, DELETE"
    assert ok_json(call(server, "todos", "GET", "/api/other"), 404) == {"error": "Not found"}
    # the static files of the same deploy are served as before
    assert call(server, "todos", "GET", "/").text == "<h1>Todos</h1>"


def test_a_knowledge_base_app_with_top_level_returns(server: FaztServer) -> None:
    def kb(method: str, path: str, session: str | None = "s1", **kw: Any) -> httpx.Response:
        params = {"session": session} if session else {}
        return call(server, "kb", method, f"/api/{path}", params=params, **kw)

    assert ok_json(kb("GET", "pages", session=None), 400) == {"error": "session is required"}
    assert ok_json(kb("GET", "pages")) == {"pages": [], "cached": False}

    one = ok_json(kb("POST", "pages", json={"title": "Intro", "content": "hello"}), 201)
    two = ok_json(kb("POST", "pages", json={"title": "Setup", "content": "steps"}), 201)
    other = ok_json(kb("POST", "pages", session="s2", json={"title": "Not yours"}), 201)
    assert one["session"] == "s1" and one["views"] == 0 and "_id" not in one
    assert ok_json(kb("POST", "pages", json={}), 400) == {"error": "title is required"}

    fresh = ok_json(kb("GET", "pages"))
    assert fresh["cached"] is False
    assert [p["title"] for p in fresh["pages"]] == ["Intro", "Setup"]      # order: asc
    again = ok_json(kb("GET", "pages"))
    assert again == {"pages": fresh["pages"], "cached": True}

    # the cache entry carries its ttl as an expiry time in ms
    before_ms = time.time() * 1000
    cache = ok_json(kb("GET", "cache"))
    assert [item["key"] for item in cache] == ["pages:s1"]
    assert cache[0]["value"] == fresh["pages"]
    assert before_ms + 50_000 < cache[0]["expiresAt"] < before_ms + 70_000

    # a page of another session is not found; reading one counts a view
    assert ok_json(kb("GET", f"pages/{other['id']}"), 404) == {"error": "Page not found"}
    assert ok_json(kb("GET", f"pages/{one['id']}"))["views"] == 1
    assert ok_json(kb("GET", f"pages/{one['id']}"))["views"] == 2

    edited = ok_json(kb("PUT", f"pages/{one['id']}", json={"title": "Intro 2", "clear": True}))
    assert edited["title"] == "Intro 2" and "content" not in edited and edited["views"] == 2
    assert ok_json(kb("GET", "pages"))["cached"] is False     # the edit dropped the cache

    assert ok_json(kb("DELETE", f"pages/{two['id']}")) == {"deleted": two["id"]}
    assert ok_json(kb("GET", f"pages/{two['id']}"), 404) == {"error": "Page not found"}
    assert [p["title"] for p in ok_json(kb("GET", "pages"))["pages"]] == ["Intro 2"]

    # the last statement, after every early return: unknown resources
    for path in ("nothing", "pages-x", ""):
        assert ok_json(kb("GET", path), 404) == {"error": "Not found"}, path
    assert ok_json(kb("POST", "cachez", json={}), 404) == {"error": "Not found"}


@pytest.mark.parametrize(("app", "query", "status", "body"), [
    ("shape-fn-after", {}, 201, b'{"path":"/api/x"}'),
    ("shape-if-else", {"x": "1"}, 200, b'{"branch":"x"}'),
    ("shape-if-else", {}, 202, b'{"branch":"else"}'),
    ("shape-multiline", {}, 200, b'{"items":[1,2],"multi":true}'),
    ("shape-try", {}, 200, b'{"fine":true}'),
    ("shape-try", {"fail": "1"}, 500, b'{"error":"nope"}'),
    ("shape-comment", {}, 200, b'{"commented":true}'),
    ("shape-iife", {}, 200, b'{"iife":2}'),
    ("shape-return-if", {"a": "1"}, 200, b'{"a":true}'),
    # documented: after top-level returns, a last statement that is an `if` gives nothing
    ("shape-return-if", {"b": "1"}, 200, b""),
    ("shape-return-multiline", {"a": "1"}, 200, b'{"a":true}'),
    ("shape-return-multiline", {}, 404, b'{"error":"Not found"}'),
])
def test_the_value_of_each_script_shape(server: FaztServer, app: str, query: dict[str, str],
                                        status: int, body: bytes) -> None:
    assert app_info(server, app)["current"]["runtime"] == "go"
    r = call(server, app, "GET", "/api/x", params=query)
    assert (r.status_code, r.content) == (status, body)


def test_top_level_variables_do_not_outlive_the_request(server: FaztServer) -> None:
    for _ in range(3):
        assert ok_json(call(server, "shape-fresh", "GET", "/api/x")) == {"n": 1}


# -- 2. the request ------------------------------------------------------------------------------

def test_request_query_takes_the_first_value(server: FaztServer) -> None:
    out = ok_json(call(server, "echo", "GET", "/api/q?a=1&a=2&b=&c=x%20y"))
    assert out["query"] == {"a": "1", "b": "", "c": "x y"}
    assert (out["method"], out["path"]) == ("GET", "/api/q")


def test_request_headers_use_go_canonical_case(server: FaztServer) -> None:
    out = ok_json(call(server, "echo", "POST", "/api/h", json={"k": 1},
                       headers={"x-custom-thing": "v1", "X-UPPER-case": "v2"}))
    assert out["headers"]["X-Custom-Thing"] == "v1"
    assert out["headers"]["X-Upper-Case"] == "v2"
    assert out["headers"]["Content-Type"] == "application/json"
    assert out["headers"]["Host"] == "echo.localhost"
    # lowercase names can be read, but are not listed
    assert out["lower"] == {"contentType": "application/json", "custom": "v1"}
    assert "x-custom-thing" not in out["keys"] and "content-type" not in out["keys"]
    assert all(k[0].isupper() for k in out["keys"]), out["keys"]
    assert sorted(out["keys"]) == sorted(out["headers"])


def test_a_repeated_header_is_joined(server: FaztServer) -> None:
    """(The Go fazt gave the first value; fazt's reference documents the joined values.)"""
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        r = client.get("/api/h", headers=[("host", "echo.localhost"), ("x-dup", "first"),
                                          ("x-dup", "second")])
    assert ok_json(r)["headers"]["X-Dup"] == "first, second"


def test_request_body_json_and_null_otherwise(server: FaztServer) -> None:
    assert ok_json(call(server, "echo", "POST", "/api/b", json={"a": [1, {"b": None}]}))[
        "body"] == {"a": [1, {"b": None}]}
    assert ok_json(call(server, "echo", "PUT", "/api/b", json=[1, 2]))["body"] == [1, 2]
    assert ok_json(call(server, "echo", "POST", "/api/b", content=b'{"x": 1}',
                        headers={"content-type": "application/vnd.api+json"}))["body"] == {"x": 1}
    # GET never has a body, even with a JSON one
    assert ok_json(call(server, "echo", "GET", "/api/b", content=b'{"x": 1}',
                        headers={"content-type": "application/json"}))["body"] is None
    # text and urlencoded bodies are null, as in the Go fazt
    out = ok_json(call(server, "echo", "POST", "/api/b", content=b"hello",
                       headers={"content-type": "text/plain"}))
    assert out["body"] is None and out["hasFiles"] is False
    assert ok_json(call(server, "echo", "POST", "/api/b", data={"f": "1"}))["body"] is None
    assert ok_json(call(server, "echo", "DELETE", "/api/b"))["body"] is None


def test_malformed_json_body_is_refused_by_the_server(server: FaztServer) -> None:
    r = call(server, "echo", "POST", "/api/b", content=b"{not json",
             headers={"content-type": "application/json"})
    assert error_code(r, 400) == "invalid_json"


def test_multipart_fields_and_files(server: FaztServer) -> None:
    data = bytes(range(256)) * 3
    expected_sum = sum(b * (i % 7 + 1) for i, b in enumerate(data)) % 1_000_000_007
    out = ok_json(call(server, "echo", "POST", "/api/upload",
                       data={"title": ["first", "second"], "note": "ünï"},
                       files={"doc": ("report.bin", data, "application/x-report"),
                              "empty": ("e.txt", b"", "text/plain")}))
    assert out["body"] == {"title": "first", "note": "ünï"}
    assert out["hasFiles"] is True
    assert out["files"]["doc"] == {"name": "report.bin", "type": "application/x-report",
                                   "size": 768, "isArrayBuffer": True, "length": 768,
                                   "sum": expected_sum}
    assert out["files"]["empty"]["size"] == 0 and out["files"]["empty"]["name"] == "e.txt"


def test_a_multipart_body_with_too_many_parts_is_refused(server: FaztServer) -> None:
    """20,000 empty parts in 1 MiB took the pure-Python parser 0.3 s: at most 1000 parts."""
    boundary = "b0undary"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n'
                    f"\r\n" for i in range(1001))
    body = (parts + f"--{boundary}--\r\n").encode()
    r = call(server, "echo", "POST", "/api/upload", content=body,
             headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert error_code(r, 400) == "bad_request"
    assert "1000 parts" in r.json()["error"]["message"]
    fine = (f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n'
            f"--{boundary}--\r\n").encode()
    r = call(server, "echo", "POST", "/api/upload", content=fine,
             headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200 and ok_json(r)["body"] == {"a": "b"}


# -- 3. respond() and the response ---------------------------------------------------------------

@pytest.mark.parametrize(("path", "status", "ctype", "body"), [
    ("empty", 200, "application/json", b""),
    ("status", 201, "application/json", b""),
    ("body", 200, "application/json", b'{"a":1,"list":[1,2]}'),
    ("string", 200, "application/json", b"plain text"),
    ("full", 202, "text/plain", b"text body"),
    ("object", 200, "application/json", b'{"hello":"world"}'),
    ("shaped", 418, "application/json", b'{"tea":true}'),
    ("bare-string", 200, "application/json", b"just a string"),
    ("number", 200, "application/json", b"42"),
    ("undefined", 200, "application/json", b""),
    ("null", 200, "application/json", b""),
    ("no-content", 204, None, b""),
    ("html", 200, "text/html", b"<h1>hi</h1>"),
    ("uint8", 200, "application/octet-stream", b"\x00\x01\x02\xff"),
    ("buffer", 200, "application/octet-stream", b"\x09\x08\x07"),
])
def test_respond_forms(server: FaztServer, path: str, status: int, ctype: str | None,
                       body: bytes) -> None:
    r = call(server, "resp", "GET", f"/api/{path}")
    assert (r.status_code, r.headers.get("content-type"), r.content) == (status, ctype, body)


def test_respond_headers_are_sent_as_strings(server: FaztServer) -> None:
    assert call(server, "resp", "GET", "/api/full").headers["x-count"] == "7"
    assert call(server, "resp", "GET", "/api/shaped").headers["x-tea"] == "yes"


def test_a_set_cookie_header_becomes_a_cookie(server: FaztServer) -> None:
    """A Go script sets cookies with a Set-Cookie header: it is checked like any app's cookie
    and sent with only the attributes it names (no HttpOnly here)."""
    r = call(server, "resp", "GET", "/api/cookie")
    assert ok_json(r) == {"ok": 1}
    assert r.headers.get_list("set-cookie") == ["sid=abc; Path=/; SameSite=Lax"]


def test_text_that_looks_like_base64_is_not_decoded(server: FaztServer) -> None:
    r = call(server, "resp", "GET", "/api/looks-base64")
    assert (r.status_code, r.headers["content-type"], r.content) == \
        (200, "text/plain", b"SGVsbG8=")


def test_an_uploaded_file_is_served_back_byte_for_byte(server: FaztServer) -> None:
    data = bytes((i * 37 + 11) & 255 for i in range(5000)) + b"\r\n\x00=="
    out = ok_json(call(server, "files", "POST", "/api/upload", data={"folder": "img"},
                       files={"file": ("pic.png", data, "image/png")}), 201)
    assert out == {"path": "uploads/img/pic.png", "size": len(data)}
    r = call(server, "files", "GET", "/api/file", params={"path": "uploads/img/pic.png"})
    assert (r.status_code, r.headers["content-type"]) == (200, "image/png")
    assert r.content == data
    meta = ok_json(call(server, "files", "GET", "/api/meta",
                        params={"path": "/uploads/img/pic.png"}))
    assert meta == {"data": base64.b64encode(data).decode(), "mime": "image/png",
                    "size": len(data), "hash": hashlib.sha256(data).hexdigest()}
    # with a JSON type the base64 text goes out as it is
    raw = call(server, "files", "GET", "/api/raw-data", params={"path": "uploads/img/pic.png"})
    assert raw.text == meta["data"]
    assert ok_json(call(server, "files", "GET", "/api/file", params={"path": "nope"}),
                   404) == {"error": "File not found"}


def test_bytes_made_in_js_are_served_back(server: FaztServer) -> None:
    assert ok_json(call(server, "files", "POST", "/api/generate"), 201) == {"size": 256}
    r = call(server, "files", "GET", "/api/file", params={"path": "generated/all.bin"})
    assert (r.status_code, r.headers["content-type"]) == (200, "application/x-all-bytes")
    assert r.content == bytes(range(255, -1, -1))


# -- 4. kv, ds and s3 ----------------------------------------------------------------------------

def test_kv_get_set_delete_increment(server: FaztServer) -> None:
    out = ops(server,
              ("storage.kv.get", "kv:missing"),
              ("storage.kv.set", "kv:a", {"n": 1, "s": "x"}),
              ("storage.kv.get", "kv:a"),
              ("app.kv.get", "kv:a"),                 # fazt.app.kv is the same store
              ("storage.kv.set", "kv:b", "text", 60_000),
              ("storage.kv.increment", "kv:count"),
              ("storage.kv.increment", "kv:count"),
              ("app.kv.increment", "kv:count", 5),
              ("storage.kv.delete", "kv:a"),
              ("storage.kv.get", "kv:a"),
              ("storage.kv.list", "kv:"))
    assert out[:8] == ["<undefined>", "<undefined>", {"n": 1, "s": "x"}, {"n": 1, "s": "x"},
                       "<undefined>", 1, 2, 7]
    assert out[9] == "<undefined>"
    listed = out[10]
    assert [i["key"] for i in listed] == ["kv:b", "kv:count"]
    assert listed[1] == {"key": "kv:count", "value": 7}          # no expiresAt without a ttl
    assert listed[0]["value"] == "text" and isinstance(listed[0]["expiresAt"], int)
    assert listed[0]["expiresAt"] > time.time() * 1000 + 50_000


def test_kv_list_returns_every_page(server: FaztServer) -> None:
    r = call(server, "store", "POST", "/api/kv-fill", json={"n": 1100, "prefix": "bulk:"})
    out = ok_json(r)
    assert out["length"] == 1100 and out["other"] == 1100 and out["sorted"] is True
    assert out["first"] == {"key": "bulk:0000", "value": 0}
    assert out["last"] == {"key": "bulk:1099", "value": 1099}
    assert [i["key"] for i in res(server, "storage.kv.list", "bulk:10")] == \
        [f"bulk:{n}" for n in range(1000, 1100)]


@pytest.fixture(scope="module")
def bulk_docs(server: FaztServer) -> dict[str, Any]:
    """1100 documents {i, even} inserted in one request, and what the reads give."""
    out = ok_json(call(server, "store", "POST", "/api/ds-fill", json={"n": 1100, "coll": "bulk"}))
    assert out == {"count": 1100}
    read: dict[str, Any] = ok_json(call(server, "store", "POST", "/api/ds-read",
                                        json={"coll": "bulk"}))
    return read


def test_ds_find_without_limit_returns_every_document(bulk_docs: dict[str, Any]) -> None:
    assert sorted(bulk_docs["all"]) == list(range(1100))
    assert sorted(bulk_docs["asc"]) == list(range(1100))
    assert bulk_docs["keys"] == ["_createdAt", "_updatedAt", "even", "i", "id"]
    assert bulk_docs["evens"] == bulk_docs["countEven"] == 550


def test_ds_find_order_limit_and_offset(bulk_docs: dict[str, Any]) -> None:
    created_desc = bulk_docs["allCreated"]
    assert created_desc == sorted(created_desc, reverse=True)     # newest first by default
    assert bulk_docs["ascCreated"] == sorted(created_desc)
    assert bulk_docs["asc"] == list(range(1100))                  # asc: insertion order
    assert bulk_docs["limited"] == list(range(1050))
    assert bulk_docs["paged"] == [1000, 1001, 1002]


def test_ds_same_millisecond_documents_keep_insertion_order(bulk_docs: dict[str, Any]) -> None:
    """As documented: ties on _createdAt come in insertion order in both orders (so "newest
    first" is oldest first within one millisecond)."""
    created, order = bulk_docs["allCreated"], bulk_docs["all"]
    ties = [(order[j - 1], order[j]) for j in range(1, len(order))
            if created[j - 1] == created[j]]
    assert ties, "1100 inserts in one request and no two in the same millisecond"
    assert all(a < b for a, b in ties), ties[:10]


def test_ds_insert_ids_and_find_one(server: FaztServer) -> None:
    out = ops(server,
              ("storage.ds.insert", "people", {"id": "ann", "name": "Ann", "age": 31}),
              ("storage.ds.insert", "people", {"name": "Bob", "age": 25}),
              ("storage.ds.insert", "people", {"id": "", "name": "Cy", "age": 40}),
              ("storage.ds.insert", "people", {"id": 7, "name": "Dee", "age": 19}),
              ("storage.ds.findOne", "people", "ann"),
              ("storage.ds.findOne", "people", "nobody"),
              ("storage.ds.findOne", "people", {"name": "Bob"}),
              ("storage.ds.findOne", "people", {"age": {"$gt": 100}}),
              ("storage.ds.find", "people", {"id": "ann"}),
              ("storage.ds.count", "people"),
              ("app.ds.count", "people"))
    ann_id, bob_id, cy_id, dee_id = out[:4]
    assert ann_id == "ann"
    uuid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    for generated in (bob_id, cy_id, dee_id):
        assert uuid_re.match(generated), generated
    ann = out[4]
    assert {k: ann[k] for k in ("id", "name", "age")} == {"id": "ann", "name": "Ann", "age": 31}
    assert set(ann) == {"id", "name", "age", "_createdAt", "_updatedAt"}
    assert out[5] is None
    assert out[6]["id"] == bob_id and out[6]["name"] == "Bob"
    assert out[7] is None
    assert [d["name"] for d in out[8]] == ["Ann"]
    assert out[9] == out[10] == 4
    dee = res(server, "storage.ds.findOne", "people", dee_id)
    assert dee["id"] == dee_id and dee["name"] == "Dee"      # a non-string id is not kept


def test_ds_update_delete_and_operators(server: FaztServer) -> None:
    out = ops(server,
              ("storage.ds.insert", "items", {"id": "a", "n": 1, "tag": "x", "keep": True}),
              ("storage.ds.insert", "items", {"id": "b", "n": 5, "tag": "x"}),
              ("storage.ds.insert", "items", {"id": "c", "n": 9, "tag": "y"}),
              ("storage.ds.update", "items", {"tag": "x"}, {"seen": True}),
              ("storage.ds.update", "items", {"id": "a"}, {"$inc": {"n": 10}, "$unset": {"keep": 1},
                                                          "$set": {"tag": "z"}}),
              ("storage.ds.update", "items", {"id": "nope"}, {"seen": False}),
              ("storage.ds.findOne", "items", "a"),
              ("storage.ds.count", "items", {"seen": True}),
              ("storage.ds.count", "items", {"n": {"$gte": 9}}),
              ("storage.ds.find", "items", {"id": {"$in": ["b", "c"]}}, {"order": "asc"}),
              ("storage.ds.delete", "items", {"tag": "y"}),
              ("storage.ds.delete", "items", {"tag": "y"}),
              ("storage.ds.count", "items"))
    assert out[3:6] == [2, 1, 0]
    a = out[6]
    assert (a["n"], a["tag"], a["seen"], "keep" in a) == (11, "z", True, False)
    assert out[7] == 2 and out[8] == 2
    assert [d["id"] for d in out[9]] == ["b", "c"]
    assert out[10:] == [1, 0, 2]


def test_ds_delete_oldest_keeps_the_newest(server: FaztServer) -> None:
    for i in range(5):      # one request each: five different creation times
        res(server, "storage.ds.insert", "events", {"id": f"e{i}", "i": i})
    assert res(server, "storage.ds.deleteOldest", "events", 2) == 3
    assert [d["id"] for d in res(server, "storage.ds.find", "events")] == ["e4", "e3"]
    assert res(server, "storage.ds.deleteOldest", "events", 5) == 0
    # only the legacy namespace has it, as in the Go fazt
    assert res(server, "storage.ds.find", "events", {}, {"limit": 1})[0]["id"] == "e4"
    out = ok_json(op(server, "app.ds.deleteOldest", "events", 1))
    assert (out["ok"], out["message"]) == (False, "app.ds.deleteOldest is not a function"), out


def test_s3_put_get_list_delete(server: FaztServer) -> None:
    text = "héllo wörld"
    out = ops(server,
              ("storage.s3.put", "/docs/a.txt", text, "text/plain"),
              ("storage.s3.put", "docs/b.bin", "bytes?"),
              ("app.s3.put", "other/c.txt", "c", "text/plain"),
              ("storage.s3.get", "docs/a.txt"),
              ("app.s3.get", "/docs/a.txt"),
              ("storage.s3.get", "docs/none"),
              ("storage.s3.list", "docs/"),
              ("storage.s3.list", "/docs/"),
              ("storage.s3.delete", "docs/b.bin"),
              ("storage.s3.get", "docs/b.bin"),
              ("storage.s3.list", "docs/"))
    raw = text.encode()
    assert out[3] == {"data": base64.b64encode(raw).decode(), "mime": "text/plain",
                      "size": len(raw), "hash": hashlib.sha256(raw).hexdigest()}
    assert out[4] == out[3]
    assert out[5] is None
    listed = out[6]
    assert [(b["path"], b["mime"], b["size"]) for b in listed] == \
        [("docs/a.txt", "text/plain", len(raw)), ("docs/b.bin", "application/octet-stream", 6)]
    assert all(isinstance(b["updatedAt"], int) and b["updatedAt"] > 1.7e12 for b in listed)
    assert out[7] == listed
    assert out[9] is None
    assert [b["path"] for b in out[10]] == ["docs/a.txt"]


# -- 5. users, env, app info, logs, unavailable namespaces, require ------------------------------

def test_user_scopes_are_per_user(server: FaztServer) -> None:
    for user in ("alice", "bob"):
        ops(server, ("app.user.kv.set", "color", f"{user}'s"),
            ("app.user.ds.insert", "notes", {"id": "n1", "by": user}),
            ("app.user.s3.put", "f.txt", f"{user} file", "text/plain"), user=user)
    res(server, "app.kv.set", "color", "the app's")
    for user in ("alice", "bob"):
        out = ops(server, ("app.user.kv.get", "color"), ("app.user.ds.find", "notes"),
                  ("app.user.s3.get", "f.txt"), ("app.user.kv.list", ""), user=user)
        assert out[0] == f"{user}'s"
        assert [(d["id"], d["by"]) for d in out[1]] == [("n1", user)]
        assert base64.b64decode(out[2]["data"]).decode() == f"{user} file"
        assert [i["key"] for i in out[3]] == ["color"]
    assert res(server, "app.kv.get", "color") == "the app's"
    assert res(server, "app.ds.findOne", "notes", "n1") is None
    assert res(server, "app.s3.get", "f.txt") is None


@pytest.mark.parametrize("call_name", ["app.user.kv.get", "app.user.ds.find", "app.user.s3.list"])
def test_user_scopes_without_a_user_throw(server: FaztServer, call_name: str) -> None:
    args = ["k"] if call_name.endswith("kv.get") else ["notes"] if ".ds." in call_name else []
    caught = ok_json(op(server, call_name, *args))
    assert (caught["ok"], caught["code"]) == (False, "auth_required"), caught
    assert "signed-in user" in caught["message"]
    assert error_code(op(server, call_name, *args, uncaught=True), 401) == "auth_required"


def test_env_values_set_by_the_operator(server: FaztServer) -> None:
    out = ok_json(call(server, "misc", "GET", "/api/env"))
    assert out == {"greeting": "fallback", "hasGreeting": False, "missing": "fallback",
                   "missingNoDefault": True, "hasMissing": False, "other": None}
    done = server.cli("app", "env", "set", "misc", "GREETING=hello = world", "OTHER=2")
    assert done.returncode == 0, done.stderr
    try:
        out = ok_json(call(server, "misc", "GET", "/api/env"))
        assert out == {"greeting": "hello = world", "hasGreeting": True, "missing": "fallback",
                       "missingNoDefault": True, "hasMissing": False, "other": "2"}
    finally:
        server.cli("app", "env", "unset", "misc", "GREETING", "OTHER")
    assert ok_json(call(server, "misc", "GET", "/api/env"))["hasGreeting"] is False


def test_app_id_name_and_version(server: FaztServer) -> None:
    out = ok_json(call(server, "misc", "GET", "/api/info"))
    assert out["id"] == out["name"] == "misc"
    assert out["versionType"] == "string" and out["version"]


def test_fazt_log_and_console_reach_the_app_log(server: FaztServer) -> None:
    tag = uuid.uuid4().hex[:10]
    request_id = rid()
    assert ok_json(call(server, "misc", "GET", "/api/log", params={"tag": tag},
                        headers={"x-request-id": request_id})) == {"logged": True}
    line = wait_for_log(server, "misc", request_id, lambda x: f"go-log {tag}" in x["message"])
    assert line["level"] == "info"
    wait_for_log(server, "misc", request_id, lambda x: f"go-console {tag}" in x["message"])
    out = server.cli("app", "logs", "misc", "--url", server.url, "--request-id", request_id)
    assert out.returncode == 0, out.stderr
    assert f"go-log {tag}" in out.stdout and f"go-console {tag}" in out.stdout


@pytest.mark.parametrize("name", ["fazt.auth.getUser", "fazt.realtime.broadcast",
                                  "fazt.worker.spawn", "fazt.private.read", "fazt.image.resize",
                                  "fazt.app.media.serve"])
def test_unavailable_namespaces_throw_naming_themselves(server: FaztServer, name: str) -> None:
    out = ok_json(call(server, "misc", "GET", "/api/unavailable", params={"name": name}))
    assert out["threw"] is True and out["isError"] is True, out
    assert out["message"].startswith(f"{name} is not available in fazt's Go compatibility mode")
    assert out["code"] == "not_available"


def test_unavailable_namespaces_can_still_be_mentioned(server: FaztServer) -> None:
    out = ok_json(call(server, "misc", "GET", "/api/unavailable-typeof"))
    assert out == {"auth": "object", "net": "object", "media": "object",
                   "json": '{"a":{},"n":{}}'}


def test_an_uncaught_unavailable_call_is_a_js_error_logged(server: FaztServer) -> None:
    request_id = rid()
    r = call(server, "misc", "GET", "/api/uncaught-unavailable",
             headers={"x-request-id": request_id})
    assert error_code(r, 500) == "js_error"
    line = wait_for_log(server, "misc", request_id, lambda x: x["level"] == "error")
    assert "fazt.auth.getUser is not available in fazt's Go compatibility mode" in line["message"]
    assert "api/main.js:" in line["message"]


def test_require_loads_api_modules_once_per_request(server: FaztServer) -> None:
    first = ok_json(call(server, "misc", "GET", "/api/require"))
    second = ok_json(call(server, "misc", "GET", "/api/require"))
    for out in (first, second):
        assert out["doubled"] == 42 and out["sameModule"] is True
        assert out["seenPath"] == "/api/require"        # modules see the request
        assert out["shout"] == "HEY!" and out["data"] == {"answer": 42}
    # three requires, one evaluation per request; a new one for the next request
    assert second["evaluations"] == first["evaluations"] + 1
    assert first["token"] != second["token"]


@pytest.mark.parametrize("name", ["lodash", "uuid", "zod", "dayjs"])
def test_require_of_the_go_stdlib_says_what_to_do(server: FaztServer, name: str) -> None:
    out = ok_json(call(server, "misc", "GET", "/api/require-std", params={"name": name}))
    assert out["threw"] is True
    assert f'require("{name}")' in out["message"] and "copy the library into api/" in \
        out["message"]


def test_require_of_a_missing_module_is_a_js_error(server: FaztServer) -> None:
    request_id = rid()
    r = call(server, "misc", "GET", "/api/require-missing", headers={"x-request-id": request_id})
    assert error_code(r, 500) == "js_error"
    line = wait_for_log(server, "misc", request_id, lambda x: x["level"] == "error")
    assert 'require("./nope.js"): no module api/nope.js' in line["message"]


# -- 6. runtime detection, the admin view, rollback, validate ------------------------------------

def test_admin_view_shows_the_go_runtime_and_its_grant(server: FaztServer) -> None:
    info = app_info(server, "kb")
    assert info["current"]["runtime"] == "go" and info["manifest"] is None
    assert info["capabilities"]["requested"] == {"kv": {}, "docs": {}, "blobs": {}, "env": "*",
                                                 "net": {"allow": "operator", "secrets": "*"}}
    todos = app_info(server, "todos")
    assert todos["current"]["runtime"] == "go"          # a manifest without "capabilities"
    assert app_info(server, "modern")["current"]["runtime"] == "fazt"
    assert app_info(server, "capsempty")["current"]["runtime"] == "fazt"


def test_a_modern_handler_without_capabilities_is_not_go_mode(server: FaztServer) -> None:
    out = ok_json(call(server, "modern", "GET", "/api/x"))
    assert out == {"modern": True, "kv": "capability_not_granted", "env": "undefined",
                   "fazt": "undefined", "header": "lowercase"}
    caps = app_info(server, "modern")["capabilities"]
    assert (caps["requested"], caps["granted"]) == (None, {})


def test_an_empty_capabilities_key_turns_go_mode_off(server: FaztServer) -> None:
    message = load_error_log(server, "capsempty")
    assert "respond is not defined" in message, message


def test_rollback_restores_the_runtime(server: FaztServer) -> None:
    deploy(server, "flip", {"api/main.js": GO_SCRIPT_JS})
    assert ok_json(call(server, "flip", "GET", "/api/x")) == {"go": True, "kv": "function"}
    deploy(server, "flip", {"api/main.js": MODERN_JS})
    assert app_info(server, "flip")["current"]["runtime"] == "fazt"
    assert ok_json(call(server, "flip", "GET", "/api/x"))["modern"] is True
    with server.admin() as admin:
        r = admin.post("/api/apps/flip/rollback")
    assert r.status_code == 200, r.text
    info = app_info(server, "flip")
    assert info["current"]["runtime"] == "go"
    assert [d["runtime"] for d in info["deploys"]] in (["fazt", "go"], ["go", "fazt"])
    assert ok_json(call(server, "flip", "GET", "/api/x")) == {"go": True, "kv": "function"}
    out = server.cli("app", "info", "flip")
    assert out.returncode == 0, out.stderr
    assert "Go fazt compatibility" in out.stdout


def write_dir(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def test_validate_names_the_go_runtime(server: FaztServer, tmp_path: Path) -> None:
    go_dir = write_dir(tmp_path / "go", {"api/main.js": KB_JS, "index.html": "x"})
    out = server.cli("app", "validate", str(go_dir))
    assert out.returncode == 0, out.stderr
    assert "Go fazt compatibility" in out.stdout
    modern_dir = write_dir(tmp_path / "modern", {"api/main.js": MODERN_JS})
    out = server.cli("app", "validate", str(modern_dir))
    assert out.returncode == 0, out.stderr
    assert "Go fazt compatibility" not in out.stdout and "capabilities: none" in out.stdout


def test_validate_points_to_an_existing_document(server: FaztServer, tmp_path: Path) -> None:
    go_dir = write_dir(tmp_path / "go", {"api/main.js": GO_SCRIPT_JS})
    out = server.cli("app", "validate", str(go_dir))
    assert out.returncode == 0, out.stderr
    named = re.search(r"docs/reference/[\w.-]+\.md", out.stdout)
    assert named is not None, out.stdout
    assert (REPO / named.group(0)).is_file(), named.group(0)


def test_a_comment_mentioning_module_exports_turns_go_mode_off(server: FaztServer) -> None:
    """Documented: such a script is taken for a fazt handler, and fails to load."""
    deploy(server, "mentions", {"api/main.js": "// no module.exports here: a Go script\n"
                                               + GO_SCRIPT_JS})
    assert app_info(server, "mentions")["current"]["runtime"] == "fazt"
    message = load_error_log(server, "mentions")
    assert "respond is not defined" in message, message


# -- 7. concurrency ------------------------------------------------------------------------------

def timed(server: FaztServer, app: str, path: str) -> tuple[int, float, float]:
    """(status, seconds taken, monotonic time it finished)."""
    started = time.monotonic()
    r = call(server, app, "GET", path)
    finished = time.monotonic()
    return r.status_code, finished - started, finished


def warm_both_workers(server: FaztServer, app: str) -> None:
    """Bring both of the app's workers up: rounds of two concurrent 300 ms spins until the two
    ran side by side (a worker spawn can take over a second on a loaded two-core machine)."""
    for _ in range(15):
        with ThreadPoolExecutor(max_workers=2) as pool:
            took = list(pool.map(lambda _: timed(server, app, "/api/spin?ms=300"), range(2)))
        if all(t[0] == 200 for t in took) and max(t[1] for t in took) < 0.55:
            return
    pytest.fail(f"{app}: two requests never ran side by side")


def test_a_long_request_blocks_only_its_own_worker(server: FaztServer) -> None:
    warm_both_workers(server, "busy")
    with ThreadPoolExecutor(max_workers=1) as pool:
        spin = pool.submit(timed, server, "busy", "/api/spin?ms=1000")
        quick_started = time.monotonic()
        quick = timed(server, "busy", "/api/quick")
        spun = spin.result(timeout=30)
    assert quick[0] == 200 and spun[0] == 200
    assert spun[1] >= 1.0
    assert quick[2] < spun[2], (quick, spun)     # answered while the spin was still running
    assert quick[2] - quick_started < 0.5, quick


def test_a_go_worker_takes_one_request_at_a_time(server: FaztServer) -> None:
    """A worker blocked in a synchronous storage call runs nothing else: with storage delayed
    by 300 ms, four concurrent requests on the app's two workers finish in two rounds (a
    fazt app's worker would take all four at once)."""
    warm_both_workers(server, "busy")
    set_chaos(server, "busy", {"kind": "delay", "delay_ms": 300})
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: timed(server, "busy", "/api/kv"), range(4)))
    finally:
        set_chaos(server, "busy", None)
    assert [r[0] for r in results] == [200] * 4, results
    took = sorted(r[1] for r in results)
    assert took[0] >= 0.3 and took[1] < 0.55, took      # two found a free worker
    assert took[2] >= 0.55 and took[3] >= 0.55, took    # these waited for one


# -- 8. budgets and chaos ------------------------------------------------------------------------

def test_an_endless_loop_is_a_js_timeout_within_the_budget(server: FaztServer) -> None:
    assert app_info(server, "forever")["current"]["runtime"] == "go"    # limits, no caps
    warm(server, "forever")
    started = time.monotonic()
    r = call(server, "forever", "GET", "/api/forever")
    elapsed = time.monotonic() - started
    assert error_code(r, 504) == "js_timeout"
    assert 0.6 <= elapsed <= 0.8 + SLACK_S, elapsed
    assert ok_json(call(server, "forever", "GET", "/api/after")) == {"path": "/api/after"}


def set_chaos(server: FaztServer, app: str, fault: dict[str, Any] | None) -> None:
    with server.admin() as admin:
        r = admin.put(f"/api/apps/{app}/chaos", json=fault) if fault else \
            admin.delete(f"/api/apps/{app}/chaos")
    assert r.status_code == 200, r.text


def test_a_storage_delay_past_the_budget_is_a_storage_timeout(server: FaztServer) -> None:
    warm(server, "slow")
    before = ok_json(call(server, "slow", "GET", "/api/x"))["hits"]
    set_chaos(server, "slow", {"kind": "delay", "delay_ms": 3000})
    try:
        for _ in range(3):
            started = time.monotonic()
            r = call(server, "slow", "GET", "/api/x")
            elapsed = time.monotonic() - started
            assert r.status_code == 504, r.text
            error = r.json()["error"]
            assert error["code"] == "storage_timeout" or error.get("phase") == "storage", error
            assert elapsed <= 1.0 + SLACK_S, elapsed
    finally:
        set_chaos(server, "slow", None)
    # the worker serves again at once, and quickly
    for _ in range(3):
        started = time.monotonic()
        out = ok_json(call(server, "slow", "GET", "/api/x"))
        assert time.monotonic() - started < 0.5
        assert out["hits"] > before


def test_a_storage_failure_reaches_the_client_with_its_code(server: FaztServer) -> None:
    set_chaos(server, "slow", {"kind": "fail", "error": "storage_busy"})
    try:
        assert error_code(call(server, "slow", "GET", "/api/x"), 503) == "storage_busy"
    finally:
        set_chaos(server, "slow", None)
    assert call(server, "slow", "GET", "/api/x").status_code == 200


# -- 9. errors -----------------------------------------------------------------------------------

def test_an_uncaught_error_is_a_js_error_naming_file_and_line(server: FaztServer) -> None:
    request_id = rid()
    r = call(server, "boom", "GET", "/api/throw", headers={"x-request-id": request_id})
    assert error_code(r, 500) == "js_error"
    assert "failed on purpose" not in r.text          # the client is told nothing more
    line = wait_for_log(server, "boom", request_id, lambda x: x["level"] == "error")
    assert "the go script failed on purpose" in line["message"]
    assert "api/main.js:3:" in line["message"], line
    out = server.cli("app", "logs", "boom", "--url", server.url, "--request-id", request_id)
    assert out.returncode == 0, out.stderr
    assert "the go script failed on purpose" in out.stdout and "api/main.js:3" in out.stdout
    assert ok_json(call(server, "boom", "GET", "/api/fine")) == {"ok": True}


def test_an_error_in_a_module_names_the_module(server: FaztServer) -> None:
    request_id = rid()
    r = call(server, "boom", "GET", "/api/module", headers={"x-request-id": request_id})
    assert error_code(r, 500) == "js_error"
    line = wait_for_log(server, "boom", request_id, lambda x: x["level"] == "error")
    assert "TypeError: a module failed on purpose" in line["message"]
    assert "api/bad.js:2:" in line["message"], line


def test_a_syntax_error_is_logged_with_its_line(server: FaztServer) -> None:
    message = load_error_log(server, "syntax")
    assert "api/main.js:3:" in message and "SyntaxError" in message, message


def test_a_syntax_error_after_a_top_level_return_names_main_js(server: FaztServer) -> None:
    message = load_error_log(server, "syntaxret")
    assert "SyntaxError" in message and "api/main.js:3" in message, message


# -- sloppy scripts and odd endings ------------------------------------------------------------

def test_an_undeclared_loop_variable_works_as_in_sloppy_js(server: FaztServer) -> None:
    deploy(server, "sloppy", {"api/main.js": """\
function handler(req) {
  var out = [];
  for (i = 0; i < 3; i++) out.push(i);
  total = out.length;
  return respond({ out: out, total: total });
}
handler(request)
"""})
    assert ok_json(call(server, "sloppy", "GET", "/api/x")) == {"out": [0, 1, 2], "total": 3}


def test_a_final_respond_followed_by_a_block_comment(server: FaztServer) -> None:
    deploy(server, "comment", {"api/main.js": """\
if (request.path === '/api/one') return respond({ one: 1 });
respond(404, { error: 'Not found' }); /* end of the API */
"""})
    assert ok_json(call(server, "comment", "GET", "/api/one")) == {"one": 1}
    assert ok_json(call(server, "comment", "GET", "/api/two"), 404) == {"error": "Not found"}
