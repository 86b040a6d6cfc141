"""The Go fazt compatibility runtime inside real workers (``go_compat.js``): how a script's
value is found (completion value, top-level return, the compile-once fast path and the eval
fallback), the synchronous capability calls and how they map to kv/docs/blobs, their deadline,
and one request per worker. The black-box tests against a server are in
tests/integration/test_go_compat.py."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
import trio

from fazt.budget import Budget, BudgetPolicy
from fazt.capabilities import Binary
from fazt.errors import BudgetExceeded, JsError
from fazt.hosting import Manifest, runtime_of
from fazt.sandbox import exports_handler
from tests.sandbox.conftest import SandboxHarness, app, request_body, running


async def go(sandbox: SandboxHarness, source: str, **kwargs: Any) -> dict[str, Any]:
    outcome = await sandbox.run(kwargs.pop("name", "g"), app(source), runtime="go", **kwargs)
    return dict(outcome.response)


def body_of(response: dict[str, Any]) -> Any:
    return orjson.loads(response["body"])


# -- which deploys are Go scripts -----------------------------------------------------------------

@pytest.mark.parametrize(("source", "exports"), [
    ("handler(request)", False),
    ("var x = respond(200)\nx", False),
    ("// module.exports is how fazt apps do it\nrespond()", True),   # documented: a mention
    ("module.exports = async function () {}", True),
    ("module . exports = f", True),
    ("exports.default = function () {}", True),
    ("exports['default'] = f", True),
    ("export default async function () {}", True),
    ("var myexports = {}; myexports.x = 1; respond(myexports)", False),
])
def test_a_main_that_exports_is_a_fazt_handler(source: str, exports: bool) -> None:
    assert exports_handler(source) is exports


def test_only_a_manifest_without_capabilities_makes_a_go_app() -> None:
    script = b"handler(request)"
    assert runtime_of(Manifest(), script) == "go"
    assert runtime_of(Manifest(), b"module.exports = f") == "fazt"
    assert runtime_of(Manifest(), None) == "fazt"                   # no api/main.js
    assert runtime_of(Manifest(), b"\xff\xfe") == "fazt"            # not UTF-8
    from fazt.capabilities import parse_capabilities
    assert runtime_of(Manifest(capabilities=parse_capabilities({})), script) == "fazt"


# -- the script's value ---------------------------------------------------------------------------

async def test_the_completion_value_is_the_response(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "function handler(req) { return respond(201, {path: req.path}) }\n"
                          "handler(request)\n")
    assert (r["status"], body_of(r)) == (201, {"path": "/api/x"})
    assert r["type"] == "application/json"


async def test_a_function_declared_after_the_call_still_works(sandbox: SandboxHarness) -> None:
    # The last statement is a declaration: the script runs by eval, exactly.
    r = await go(sandbox, "handler(request)\nfunction handler(req) {\n"
                          "  return respond({n: 1})\n}\n")
    assert body_of(r) == {"n": 1}


async def test_a_script_ending_in_an_if_gives_the_value_of_the_branch_run(
        sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "var p = request.path\nif (p === '/api/x') {\n  respond(202, 'x')\n}"
                          " else {\n  respond(404)\n}\n")
    assert (r["status"], r["body"]) == (202, "x")


async def test_a_last_statement_over_several_lines_with_a_comment(
        sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "var a = 2\nrespond(200, {\n  a: a,\n  s: 'x;y'\n}); // done\n"
                          "// the end\n")
    assert body_of(r) == {"a": 2, "s": "x;y"}


async def test_a_final_iife_runs_by_eval_and_keeps_its_value(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "var n = 3;\n(function () { return respond(200 + n) })()\n")
    assert r["status"] == 203


async def test_asi_continuation_lines_are_not_taken_for_the_last_statement(
        sandbox: SandboxHarness) -> None:
    # "+ 1" alone would be an expression; the statement is "var x = 1 ... + 1" then x
    r = await go(sandbox, "var x = 1\n  + 1\nrespond(200, {x: x})\n")
    assert body_of(r) == {"x": 2}
    r = await go(sandbox, "var o = respond(200, {v: 1})\n\no\n", name="g2")
    assert body_of(r) == {"v": 1}


async def test_top_level_return_ends_the_script(sandbox: SandboxHarness) -> None:
    source = ("var id = request.query.id\n"
              "if (!id) {\n  return respond(400, {error: 'id required'})\n}\n"
              "if (id === 'a') return respond({id: id})\n"
              "respond(404, {error: 'Not found'})\n")
    assert (await go(sandbox, source))["status"] == 400
    r = await go(sandbox, source, request=request_body(query={"id": "a"}))
    assert body_of(r) == {"id": "a"}
    r = await go(sandbox, source, request=request_body(query={"id": "b"}))
    assert (r["status"], body_of(r)) == (404, {"error": "Not found"})


async def test_top_level_return_with_no_final_expression_falls_off_empty(
        sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "if (request.query.a) return respond(201)\nvar unused = 1\n")
    assert (r["status"], r.get("body")) == (200, None)


async def test_try_catch_around_a_top_level_return(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "try {\n  return respond({v: JSON.parse('{bad')})\n} catch (e) {\n"
                          "  return respond(422, {error: e.name})\n}\n")
    assert (r["status"], body_of(r)) == (422, {"error": "SyntaxError"})


async def test_a_syntax_error_fails_the_load_with_its_line(sandbox: SandboxHarness) -> None:
    with pytest.raises(JsError):
        await go(sandbox, "var a = 1\nvar b = (\nrespond(a)\n")
    assert any("loading api/main.js failed" in m and "api/main.js:" in m
               for m in sandbox.logs.messages("g"))


async def test_the_script_runs_afresh_for_each_request(sandbox: SandboxHarness) -> None:
    source = "var count = (typeof count === 'number' ? count : 0) + 1\nrespond({count: count})\n"
    for _ in range(3):
        assert body_of(await go(sandbox, source)) == {"count": 1}


async def test_undeclared_assignments_work_and_do_not_outlive_the_request(
        sandbox: SandboxHarness) -> None:
    # Sloppy scripts assign names they never declare (the worker's global object is frozen:
    # without the script's own scope such names would vanish, then fail to read).
    source = ("seen = typeof total\ntotal = 0\nfor (i = 0; i < 4; i++) { total += i }\n"
              "function bump() { hits = (hits || 0) + 1; return hits }\nhits = 0\nbump()\n"
              "respond({seen: seen, total: total, i: i, hits: bump(), json: typeof JSON})\n")
    for _ in range(2):      # the second request starts afresh
        r = await go(sandbox, source)
        assert body_of(r) == {"seen": "undefined", "total": 6, "i": 4, "hits": 2,
                              "json": "object"}


async def test_a_modules_undeclared_names_are_its_own(sandbox: SandboxHarness) -> None:
    files = {"api/main.js": "shared = 'main'\nvar lib = require('./lib.js')\n"
                            "respond({main: shared, lib: lib.get()})\n",
             "api/lib.js": "shared = 'lib'\nmodule.exports = {get: function () { "
                           "return shared }}\n"}
    outcome = await sandbox.run("mods", files, runtime="go")
    assert orjson.loads(outcome.response["body"]) == {"main": "main", "lib": "lib"}


async def test_a_final_respond_followed_by_a_block_comment(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "if (request.query.a) return respond(200)\n"
                          "respond(404, {error: 'Not found'}); /* the end */\n")
    assert (r["status"], body_of(r)) == (404, {"error": "Not found"})


async def test_a_syntax_error_after_a_top_level_return_names_the_file(
        sandbox: SandboxHarness) -> None:
    with pytest.raises(JsError):
        await go(sandbox, "var a = 1;\nif (a > 5) return respond(1)\nvar c = ;\n")
    logged = [m for m in sandbox.logs.messages("g") if "loading api/main.js failed" in m]
    assert logged and "api/main.js:3:" in logged[-1], logged
    assert "fazt:" not in logged[-1]


async def test_set_cookie_headers_become_cookies(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "respond(200, 'ok', {'Set-Cookie': ['sid=abc; Path=/; HttpOnly; "
                          "Max-Age=60; SameSite=Strict', 'theme=\"dark\"; Secure'], "
                          "'X-A': 'b'})\n")
    assert r["cookies"] == {
        "sid": {"value": "abc", "httpOnly": True, "path": "/", "maxAge": 60,
                "sameSite": "Strict"},
        "theme": {"value": "dark", "httpOnly": False, "secure": True}}
    assert r["headers"] == [["X-A", "b"]]


async def test_an_uncaught_error_is_logged_with_the_app_file_and_line(
        sandbox: SandboxHarness) -> None:
    with pytest.raises(JsError):
        await go(sandbox, "var x = null\n\nrespond(x.field)\n")
    logged = "\n".join(sandbox.logs.messages("g"))
    assert "api/main.js:3" in logged and "fazt:" not in logged


# -- synchronous calls ----------------------------------------------------------------------------

class Recorder:
    """A capability host that records calls and answers from a table."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, str, list[Any]]] = []
        self.answers = answers or {}

    async def __call__(self, cap: str, method: str, args: list[Any], budget: Budget) -> Any:
        self.calls.append((cap, method, args))
        answer = self.answers.get(f"{cap}.{method}")
        return answer(args) if callable(answer) else answer


async def test_kv_calls_are_synchronous_and_keep_order(sandbox: SandboxHarness) -> None:
    host = Recorder({"kv.get": lambda args: {"seen": args[0]}})
    r = await go(sandbox, "var kv = fazt.storage.kv\nkv.set('a', {n: 1}, 1500.4)\n"
                          "kv.set('b', 2)\nvar got = kv.get('a')\nrespond({got: got})\n",
                 capabilities=host)
    assert body_of(r) == {"got": {"seen": "a"}}
    assert host.calls == [("kv", "set", ["a", {"n": 1}, {"ttlMs": 1500}]),
                          ("kv", "set", ["b", 2]), ("kv", "get", ["a"])]


async def test_ds_maps_ids_and_changes(sandbox: SandboxHarness) -> None:
    stored = {"_id": "k1", "_createdAt": 5, "_updatedAt": 6, "name": "x"}
    host = Recorder({"docs.insert": lambda args: {**args[1], "_id": args[1].get("_id", "u1")},
                     "docs.update": 1, "docs.get": stored})
    r = await go(sandbox, "var ds = fazt.storage.ds\n"
                          "var a = ds.insert('items', {id: 'k1', name: 'x'})\n"
                          "var b = ds.insert('items', {id: 7, name: 'y'})\n"
                          "var n = ds.update('items', {id: 'k1'}, {name: 'z', $inc: {v: 1}})\n"
                          "respond({a: a, b: b, n: n, one: ds.findOne('items', 'k1')})\n",
                 capabilities=host)
    assert body_of(r) == {"a": "k1", "b": "u1", "n": 1,
                          "one": {"name": "x", "id": "k1", "_createdAt": 5, "_updatedAt": 6}}
    assert host.calls[:3] == [
        ("docs", "insert", ["items", {"name": "x", "_id": "k1"}]),
        ("docs", "insert", ["items", {"name": "y"}]),
        ("docs", "update", ["items", {"_id": "k1"}, {"$inc": {"v": 1}, "$set": {"name": "z"}}])]
    assert host.calls[3] == ("docs", "get", ["items", "k1"])


async def test_ds_find_pages_through_every_match_newest_first(sandbox: SandboxHarness) -> None:
    docs = [{"_id": str(i), "_createdAt": i, "_updatedAt": i} for i in range(2500)]

    def find(args: list[Any]) -> list[Any]:
        options = args[2]
        assert options["sort"] == {"_createdAt": -1}
        return docs[options["offset"]:options["offset"] + options["limit"]]

    host = Recorder({"docs.find": find})
    r = await go(sandbox, "var all = fazt.app.ds.find('items')\n"
                          "respond({n: all.length, first: all[0].id, last: all[2499].id})\n",
                 capabilities=host)
    assert body_of(r) == {"n": 2500, "first": "0", "last": "2499"}
    assert [c[2][2]["offset"] for c in host.calls] == [0, 1000, 2000]


async def test_s3_get_gives_base64_and_serves_its_bytes(sandbox: SandboxHarness) -> None:
    data = bytes(range(256))
    meta = {"key": "p.bin", "contentType": "image/png", "size": 256, "sha256": "ab",
            "public": False, "updatedAt": 1}
    host = Recorder({"blobs.get": Binary(meta, data)})
    r = await go(sandbox, "var f = fazt.storage.s3.get('/p.bin')\n"
                          "respond(200, f.data, {'Content-Type': f.mime})\n",
                 capabilities=host)
    assert base64.b64decode(r["b64"]) == data
    assert ["content-type", "image/png"] in r["headers"] or \
        ["Content-Type", "image/png"] in r["headers"]
    assert host.calls == [("blobs", "get", ["p.bin"])]


async def test_a_base64_looking_text_body_is_sent_as_text(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "respond(200, 'SGVsbG8=', {'Content-Type': 'text/plain'})\n")
    assert r["body"] == "SGVsbG8="


async def test_a_refused_call_throws_with_its_code(sandbox: SandboxHarness) -> None:
    from fazt.errors import CapabilityNotGranted

    async def refuse(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
        raise CapabilityNotGranted("withheld")

    r = await go(sandbox, "try { fazt.storage.kv.get('a') } catch (e) {\n"
                          "  respond(200, {code: e.code, message: e.message})\n}\n",
                 capabilities=refuse)
    assert body_of(r) == {"code": "capability_not_granted", "message": "withheld"}


async def test_a_call_that_never_answers_ends_at_the_deadline(sandbox: SandboxHarness) -> None:
    async def hang(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
        await trio.sleep_forever()

    source = "respond(200, fazt.storage.kv.get('a'))\n"
    started = trio.current_time()
    with pytest.raises(BudgetExceeded):
        await go(sandbox, source, capabilities=hang,
                 policy=BudgetPolicy(request_s=1.0, js_cap_s=1.0))
    assert trio.current_time() - started < 2.0
    # the app's worker goes on serving
    r = await go(sandbox, source, capabilities=Recorder({"kv.get": "ok"}))
    assert r["body"] == "ok"


async def test_blocked_time_is_not_js_time(sandbox: SandboxHarness) -> None:
    async def slow(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
        await trio.sleep(0.3)
        return 1

    outcome = await sandbox.run("g", app("fazt.storage.kv.get('a')\nrespond(200)\n"),
                                runtime="go", capabilities=slow)
    assert outcome.js_s < 0.2


async def test_a_go_worker_takes_one_request_at_a_time() -> None:
    release = trio.Event()
    entered: list[str] = []

    async def gate(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
        entered.append(args[0])
        if args[0] == "first":
            await release.wait()
        return args[0]

    source = "respond(200, fazt.storage.kv.get(request.query.k))\n"
    async with running(workers_per_app=1, worker_concurrency=8) as harness:
        results: dict[str, Any] = {}

        async def one(key: str) -> None:
            outcome = await harness.run("g", app(source), runtime="go", capabilities=gate,
                                        request=request_body(query={"k": key}))
            results[key] = outcome.response["body"]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "first")
            with trio.fail_after(5):
                while entered != ["first"]:
                    await trio.sleep(0.01)
            nursery.start_soon(one, "second")
            # The second request waits for the only worker: its call cannot have started.
            await trio.sleep(0.3)
            assert entered == ["first"]
            release.set()
        assert results == {"first": "first", "second": "second"}
        assert entered == ["first", "second"]


async def test_env_and_app_name(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "respond({g: fazt.env.get('GREETING'), d: fazt.env.get('NO', 'dflt'),"
                          " has: fazt.env.has('GREETING'), app: fazt.app.name})\n",
                 env={"GREETING": "hi"}, name="named")
    assert body_of(r) == {"g": "hi", "d": "dflt", "has": True, "app": "named"}


async def test_required_modules_see_the_request_and_run_per_request(
        sandbox: SandboxHarness) -> None:
    files = {"api/main.js": "var u = require('./util.js')\nvar v = require('util')\n"
                            "respond({same: u === v, path: u.path(), n: u.n})\n",
             "api/util.js": "var n = (typeof n === 'number' ? n : 0) + 1\n"
                            "module.exports = {n: n, path: function () { return request.path }}\n"}
    for _ in range(2):
        outcome = await sandbox.run("m", files, runtime="go")
        assert orjson.loads(outcome.response["body"]) == {"same": True, "path": "/api/x", "n": 1}


# -- the reference documents every name ----------------------------------------------------------

async def test_every_fazt_name_is_in_the_reference(sandbox: SandboxHarness) -> None:
    """docs/reference/go-compat.md names every member of ``fazt`` and every method of the
    Go fazt's kv, ds and s3 (as ``kv.get(...)``)."""
    import re
    from pathlib import Path

    r = await go(sandbox, "respond({top: Object.keys(fazt), app: Object.keys(fazt.app),"
                          " kv: Object.keys(fazt.storage.kv), ds: Object.keys(fazt.storage.ds),"
                          " s3: Object.keys(fazt.storage.s3), env: Object.keys(fazt.env),"
                          " user: Object.keys(fazt.app.user)})\n", name="names")
    names = body_of(r)
    doc = (Path(__file__).parents[2] / "docs" / "reference" / "go-compat.md").read_text()
    spans = {m[1:-1] for m in re.findall(r"`[^`\n]+`", doc)}
    prefixes = spans | {s.split("(", 1)[0] for s in spans}
    assert {"deleteOldest", "findOne", "insert"} <= set(names["ds"])
    missing = [f"{ns}.{m}" for ns in ("kv", "ds", "s3") for m in names[ns]
               if f"{ns}.{m}" not in prefixes]
    missing += [f"fazt.{m}" for m in names["top"] if f"fazt.{m}" not in doc]
    missing += [f"fazt.app.{m}" for m in names["app"] if f"fazt.app.{m}" not in doc]
    missing += [f"fazt.env.{m}" for m in names["env"] if f"fazt.env.{m}" not in prefixes]
    missing += [f"fazt.app.user.{m}" for m in names["user"] if f"fazt.app.user.{m}" not in doc]
    assert missing == []


# -- found in review ------------------------------------------------------------------------------

async def test_waits_do_not_count_against_the_js_slice_cap(sandbox: SandboxHarness) -> None:
    async def slow(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
        await trio.sleep(0.4)
        return 1

    r = await go(sandbox, "var n = 0\nfor (var i = 0; i < 5; i++) n += fazt.storage.kv.get('a')"
                          "\nrespond({n: n})\n", capabilities=slow, name="capped",
                 policy=BudgetPolicy(request_s=5.0, js_cap_s=1.0))
    assert body_of(r) == {"n": 5}


async def test_js_time_of_a_go_script_is_counted(sandbox: SandboxHarness) -> None:
    outcome = await sandbox.run("busy", app("var t = Date.now()\nwhile (Date.now() - t < 60) {}"
                                            "\nrespond(200)\n"), runtime="go")
    assert outcome.js_s >= 0.05


async def test_a_document_read_back_can_be_written_back(sandbox: SandboxHarness) -> None:
    stored = {"_id": "k1", "_createdAt": 5, "_updatedAt": 6, "title": "x"}
    host = Recorder({"docs.get": stored, "docs.update": 1,
                     "docs.insert": lambda args: {"_id": "n1", **args[1]}})
    r = await go(sandbox, "var ds = fazt.storage.ds\nvar t = ds.findOne('todos', 'k1')\n"
                          "t.done = true\nvar n = ds.update('todos', {id: 'k1'}, t)\n"
                          "var m = ds.update('todos', {id: 'k1'}, {$set: t})\n"
                          "var id = ds.insert('archive', t)\nrespond({n: n, m: m, id: id})\n",
                 capabilities=host)
    assert body_of(r) == {"n": 1, "m": 1, "id": "k1"}
    plain = {"title": "x", "done": True}
    assert host.calls[1:] == [("docs", "update", ["todos", {"_id": "k1"}, {"$set": plain}]),
                              ("docs", "update", ["todos", {"_id": "k1"}, {"$set": plain}]),
                              ("docs", "insert", ["archive", {**plain, "_id": "k1"}])]


async def test_a_script_cannot_change_what_later_requests_run(sandbox: SandboxHarness) -> None:
    source = ("try { __fazt_code = \"respond(200, 'rewritten')\" } catch (e) {}\n"
              "try { respond.n = (respond.n || 0) + 1 } catch (e) {}\n"
              "try { fazt.storage.kv.get.x = 1 } catch (e) {}\n"
              "respond(200, {n: respond.n === undefined ? 0 : respond.n, "
              "x: fazt.storage.kv.get.x === undefined})\n")
    # two variants: the eval path (ends with an if) and the compiled path
    for name, src in (("rw1", source), ("rw2", source + "if (false) {}\n")):
        for _ in range(2):
            assert body_of(await go(sandbox, src, name=name)) == {"n": 0, "x": True}


async def test_module_names_read_as_undefined_in_main(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "var v = [typeof module, module === undefined, typeof exports]\n"
                          "respond(200, v)\n", name="modnames")
    assert body_of(r) == ["undefined", True, "undefined"]


async def test_a_source_that_would_close_the_wrapper_is_refused(sandbox: SandboxHarness) -> None:
    with pytest.raises(JsError):
        await go(sandbox, "return respond(1)\n} }); console.log('ran at load'); "
                          "(function () { {\n", name="escape")
    messages = sandbox.logs.messages("escape")
    assert not any("ran at load" in m for m in messages)
    assert any("loading api/main.js failed" in m and "api/main.js:" in m for m in messages)


async def test_a_final_let_keeps_the_completion_value(sandbox: SandboxHarness) -> None:
    r = await go(sandbox, "respond(201)\nlet [a] = [1]\n", name="letend")
    assert r["status"] == 201


@pytest.mark.parametrize("mib", [
    2,
    pytest.param(4, marks=pytest.mark.xfail(strict=True, reason=(
        "a response body crosses from the worker as base64 inside JSON (several copies of a "
        "5.6 MB string): a 4 MiB body does not fit in a 128 MB worker, in either runtime"))),
])
async def test_a_blob_is_served_at_the_default_memory(sandbox: SandboxHarness,
                                                      mib: int) -> None:
    data = bytes(range(256)) * (mib * 4096)
    meta = {"key": "big", "contentType": "application/octet-stream", "size": len(data),
            "sha256": "ab", "public": False, "updatedAt": 1}
    host = Recorder({"blobs.get": Binary(meta, data)})
    for _ in range(3):
        r = await go(sandbox, "var f = fazt.storage.s3.get('big')\n"
                              "respond(200, f.data, {'Content-Type': f.mime})\n",
                     capabilities=host, name=f"blob{mib}")
        assert base64.b64decode(r["b64"]) == data
