"""Blobs against a real `fazt run`: bytes made in JS round-trip through the capability (raw
beside the JSON), the size limit as an HTTP 413, UTF-8 decoding in ``text()``, repeated large
blobs in one worker, and ``/_fazt/blobs/<key>`` serving (signed and public URLs, ETag and
If-None-Match, HEAD, methods, bad signatures, 404s that tell nothing, other apps' hosts).

One server for the module; one app (``blobs``) answers every question through a small JSON
protocol. Requests go to 127.0.0.1 with ``Host: <app>.localhost``; there are no sleeps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.harness import FaztServer, call, deploy, start_server

pytestmark = pytest.mark.integration

KIB = 1024
MIB = 1024 * KIB
MAX_BLOB = 4 * MIB          # the server's default blobs_max_bytes

# `/api/op` runs one blobs method (a dotted name: "user.get") with JSON arguments and answers
# what came back; a blob from get() is described (its bytes summed, not sent back). The other
# routes build the data in JS: `gen` makes `size` bytes (i * 31 + seed) & 255 into a Uint8Array,
# an ArrayBuffer or a view of part of a larger buffer. With "uncaught" the handler lets a
# refused call's error escape to the client.
BLOBS_JS = """\
function gen(size, seed) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 255;
  return out;
}
function describe(blob, withText) {
  if (blob === null || blob === undefined) return blob === null ? null : '<undefined>';
  const d = blob.data;
  const out = { key: blob.key, size: blob.size, contentType: blob.contentType,
                sha256: blob.sha256, public: blob.public, updatedAt: blob.updatedAt,
                dataType: typeof d, isUint8Array: d instanceof Uint8Array,
                textType: typeof blob.text };
  if (d instanceof Uint8Array) {
    let sum = 0;
    for (let i = 0; i < d.length; i++) sum = (sum + d[i] * ((i % 7) + 1)) % 1000000007;
    out.length = d.length; out.sum = sum; out.head = Array.from(d.subarray(0, 8));
  }
  if (withText) {
    try { out.text = blob.text(); } catch (e) { out.textError = String(e); }
  }
  return out;
}
function method(blobs, op) {
  return op.split('.').reduce(function (o, k) { return o[k]; }, blobs);
}
async function run(body, fn) {
  if (body.uncaught) return { json: { ok: true, result: await fn() } };
  try { return { json: { ok: true, result: await fn() } }; }
  catch (e) { return { json: { ok: false, code: e.code, message: e.message } }; }
}
module.exports = async function (request, caps) {
  const blobs = caps.blobs;
  const body = request.body || {};
  switch (request.path) {
    case '/api/caps':
      return { json: { blobs: typeof blobs, keys: Object.keys(caps).sort(),
                       methods: blobs ? Object.keys(blobs).sort() : null,
                       user: blobs && blobs.user ? Object.keys(blobs.user).sort() : null } };
    case '/api/op':
      return run(body, async function () {
        const result = await method(blobs, body.op).apply(null, body.args);
        if (body.op === 'get' || body.op === 'user.get') return describe(result, body.text);
        return result === undefined ? '<undefined>' : result;
      });
    case '/api/gen':
      return run(body, function () {
        return blobs.put(body.key, gen(body.size, body.seed || 0), body.opts);
      });
    case '/api/buffer':
      return run(body, function () {
        return blobs.put(body.key, gen(body.size, body.seed || 0).buffer, body.opts);
      });
    case '/api/view': {
      // a view of bytes [start, end) of a larger buffer: only those bytes are the blob
      const whole = gen(body.size, body.seed || 0);
      const length = body.end - body.start;
      let view;
      if (body.kind === 'dataview') view = new DataView(whole.buffer, body.start, length);
      else if (body.kind === 'subarray') view = whole.subarray(body.start, body.end);
      else if (body.kind === 'uint16') view = new Uint16Array(whole.buffer, body.start, length / 2);
      else view = new Int8Array(whole.buffer, body.start, length);
      return run(body, function () { return blobs.put(body.key, view, body.opts); });
    }
    case '/api/bytes':
      return run(body, function () {
        return blobs.put(body.key, Uint8Array.from(body.bytes), body.opts);
      });
    case '/api/text':
      // a text of `count` copies of `unit` made here, put, read back and compared here
      return run(body, async function () {
        const text = body.unit.repeat(body.count);
        const meta = await blobs.put(body.key, text);
        const back = (await blobs.get(body.key)).text();
        return { size: meta.size, length: back.length, same: back === text };
      });
    case '/api/textbytes':
      // the UTF-8 bytes of `count` copies of `unit`, put as bytes, read back with text()
      return run(body, async function () {
        const unit = Uint8Array.from(body.unitBytes);
        const data = new Uint8Array(unit.length * body.count);
        for (let i = 0; i < body.count; i++) data.set(unit, i * unit.length);
        const meta = await blobs.put(body.key, data);
        const back = (await blobs.get(body.key)).text();
        const same = back === body.unit.repeat(body.count);
        return { size: meta.size, length: back.length, same: same };
      });
    case '/api/roundtrip':
      return run(body, async function () {
        await blobs.put(body.key, gen(body.size, body.seed || 0));
        return describe(await blobs.get(body.key), false);
      });
  }
  return { status: 404, body: 'no route' };
};
"""


def blobs_app(**extra: Any) -> dict[str, str]:
    caps: dict[str, Any] = {"blobs": {}, **extra}
    return {"manifest.json": json.dumps({"capabilities": caps}), "api/main.js": BLOBS_JS}


def gen(size: int, seed: int = 0) -> bytes:
    """What the app's gen() makes: (i * 31 + seed) & 255, a period of 256 bytes."""
    period = bytes((i * 31 + seed) & 255 for i in range(256))
    return (period * (size // 256 + 1))[:size]


def weighted_sum(data: bytes) -> int:
    """What the app's describe() computes over a blob's bytes."""
    total = 0
    for i, b in enumerate(data):
        total = (total + b * ((i % 7) + 1)) % 1_000_000_007
    return total


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- helpers ------------------------------------------------------------------------------------

def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == code, error
    return error


def post(server: FaztServer, app: str, route: str, **body: Any) -> httpx.Response:
    return call(server, app, "POST", f"/api/{route}", json=body)


def answer(server: FaztServer, app: str, route: str, **body: Any) -> dict[str, Any]:
    r = post(server, app, route, **body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def ok(server: FaztServer, app: str, op: str, *args: Any, text: bool = False) -> Any:
    out = answer(server, app, "op", op=op, args=list(args), text=text)
    assert out["ok"], out
    return out["result"]


def refused(server: FaztServer, app: str, op: str, *args: Any) -> dict[str, Any]:
    out = answer(server, app, "op", op=op, args=list(args))
    assert not out["ok"], out
    return out


def put_gen(server: FaztServer, app: str, key: str, size: int, seed: int = 0,
            **opts: Any) -> dict[str, Any]:
    out = answer(server, app, "gen", key=key, size=size, seed=seed, opts=opts or None)
    assert out["ok"], out
    meta: dict[str, Any] = out["result"]
    return meta


def put_bytes(server: FaztServer, app: str, key: str, data: bytes,
              **opts: Any) -> dict[str, Any]:
    out = answer(server, app, "bytes", key=key, bytes=list(data), opts=opts or None)
    assert out["ok"], out
    meta: dict[str, Any] = out["result"]
    return meta


def assert_holds(server: FaztServer, app: str, key: str, data: bytes, *,
                 content_type: str = "application/octet-stream", op: str = "get") -> None:
    got = ok(server, app, op, key)
    assert got is not None, key
    assert got["size"] == got["length"] == len(data)
    assert got["isUint8Array"] is True and got["textType"] == "function"
    assert got["sha256"] == sha(data)
    assert got["sum"] == weighted_sum(data)
    assert got["head"] == list(data[:8])
    assert got["contentType"] == content_type
    assert got["key"] == key


def signed_url(server: FaztServer, app: str, key: str, **opts: Any) -> str:
    url = ok(server, app, "url", key, opts or None)
    assert isinstance(url, str) and url.startswith("/_fazt/blobs/"), url
    return url


def fetch(server: FaztServer, app: str, url: str, method: str = "GET",
          **kwargs: Any) -> httpx.Response:
    return call(server, app, method, url, **kwargs)


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts.path + ("?" + urlencode(query) if query else "")


def usage(server: FaztServer, app: str) -> dict[str, int]:
    with server.admin() as admin:
        r = admin.get(f"/api/apps/{app}/policy")
    assert r.status_code == 200, r.text
    out: dict[str, int] = r.json()["capabilities"]["usage_bytes"]
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaztServer]:
    srv = start_server(tmp_path_factory.mktemp("blobs") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def app(server: FaztServer) -> str:
    deploy(server, "blobs", blobs_app())
    return "blobs"


# -- 1. the capability through HTTP -------------------------------------------------------------

def test_caps_object_has_the_blobs_methods(server: FaztServer, app: str) -> None:
    r = call(server, app, "GET", "/api/caps")
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["blobs"] == "object"
    assert seen["keys"] == ["blobs", "budget", "docs", "kv", "log", "net"]
    assert seen["methods"] == ["delete", "get", "list", "put", "url", "user"]
    assert seen["user"] == ["delete", "get", "list", "put", "url"]


@pytest.mark.parametrize("size", [1, 100 * KIB, MAX_BLOB])
def test_bytes_made_in_js_round_trip(server: FaztServer, app: str, size: int) -> None:
    key = f"rt/{size}"
    data = gen(size, seed=size % 251)
    meta = put_gen(server, app, key, size, seed=size % 251)
    assert meta["key"] == key and meta["size"] == size and meta["sha256"] == sha(data)
    assert meta["contentType"] == "application/octet-stream" and meta["public"] is False
    assert isinstance(meta["updatedAt"], int)
    assert_holds(server, app, key, data)


def test_one_byte_over_the_limit_is_a_413(server: FaztServer, app: str) -> None:
    before = usage(server, app).get("blobs", 0)
    r = post(server, app, "gen", key="over", size=MAX_BLOB + 1, uncaught=True)
    error = assert_error(r, 413, "value_too_large")
    assert "blobs.put" in error["message"] and f"{MAX_BLOB + 1} bytes" in error["message"]
    caught = answer(server, app, "gen", key="over", size=MAX_BLOB + 1)
    assert caught["ok"] is False and caught["code"] == "value_too_large", caught
    assert ok(server, app, "get", "over") is None
    assert usage(server, app).get("blobs", 0) == before


def test_array_buffers_and_views_store_only_the_viewed_bytes(server: FaztServer,
                                                             app: str) -> None:
    whole = gen(1000, seed=7)
    out = answer(server, app, "buffer", key="view/buffer", size=1000, seed=7)
    assert out["ok"] and out["result"]["size"] == 1000, out
    assert_holds(server, app, "view/buffer", whole)
    for kind, start, end in (("dataview", 13, 513), ("subarray", 100, 101),
                             ("subarray", 999, 1000), ("uint16", 200, 600),
                             ("int8", 1, 999)):
        key = f"view/{kind}/{start}-{end}"
        out = answer(server, app, "view", key=key, size=1000, seed=7, kind=kind, start=start,
                     end=end)
        assert out["ok"], out
        assert out["result"]["size"] == end - start, (kind, out)
        assert_holds(server, app, key, whole[start:end])


def test_an_empty_blob_gets_empty_data(server: FaztServer, app: str) -> None:
    """A 0-byte blob (from "", an empty Uint8Array or an empty view) reads back as an empty
    Uint8Array whose text() is ""."""
    assert ok(server, app, "put", "empty/text", "")["size"] == 0
    assert put_bytes(server, app, "empty/bytes", b"")["size"] == 0
    out = answer(server, app, "view", key="empty/view", size=10, kind="dataview", start=5,
                 end=5)
    assert out["ok"] and out["result"]["size"] == 0, out
    for key, content_type in (("empty/text", "text/plain; charset=utf-8"),
                              ("empty/bytes", "application/octet-stream"),
                              ("empty/view", "application/octet-stream")):
        got = ok(server, app, "get", key, text=True)
        assert got["size"] == 0 and got["sha256"] == sha(b"")
        assert got["contentType"] == content_type
        assert got["dataType"] == "object" and got["isUint8Array"] is True, (key, got)
        assert got["length"] == 0 and got.get("text") == "", (key, got)


def test_text_and_content_types(server: FaztServer, app: str) -> None:
    text = "plain ASCII, é, 日本語, 😀 and 𝄞"
    meta = ok(server, app, "put", "text/a", text)
    body = text.encode("utf-8")
    assert meta["size"] == len(body) and meta["sha256"] == sha(body)
    assert meta["contentType"] == "text/plain; charset=utf-8"
    got = ok(server, app, "get", "text/a", text=True)
    assert got["text"] == text and got["size"] == len(body)
    assert got["sum"] == weighted_sum(body)

    meta = ok(server, app, "put", "text/html", "<h1>hi</h1>",
              {"contentType": "text/html; charset=utf-8"})
    assert meta["contentType"] == "text/html; charset=utf-8"
    meta = put_gen(server, app, "text/png", 10, contentType="image/png", public=True)
    assert meta["contentType"] == "image/png" and meta["public"] is True

    for bad in ("text/plain\r\nX-Injected: 1", "noslash", "a/" + "b" * 300, 5):
        out = refused(server, app, "put", "text/bad", "x", {"contentType": bad})
        assert out["code"] == "capability_error", (bad, out)
    assert refused(server, app, "put", "text/bad", "x", {"public": "yes"})["code"] == \
        "capability_error"
    assert refused(server, app, "put", "", "x")["code"] == "capability_error"
    assert refused(server, app, "put", "a\u0001b", "x")["code"] == "capability_error"
    assert refused(server, app, "put", "k" * 1025, "x")["code"] == "key_too_large"
    assert refused(server, app, "put", "text/bad", 5)["code"] == "capability_error"
    assert ok(server, app, "get", "text/bad") is None


@pytest.mark.parametrize("content_type", ["text/html\r\n;x", "text/plain\n; charset=utf-8",
                                          "text/plain\x85; a"])
def test_a_content_type_with_a_line_break_or_non_ascii_is_refused(
        server: FaztServer, app: str, content_type: str) -> None:
    """The content type becomes a response header: CR/LF or non-ASCII before the ';' must be
    refused at put (the pattern's \\s* matches them), not stored and served as a 500."""
    key = f"ctype/{sha(content_type.encode())[:8]}"
    out = answer(server, app, "op", op="put",
                 args=[key, "<b>x</b>", {"contentType": content_type, "public": True}])
    served = fetch(server, app, f"/_fazt/blobs/{key}")
    assert served.status_code < 500, (served.status_code, served.text)
    assert out["ok"] is False and out["code"] == "capability_error", out


def test_text_decodes_utf8_and_replaces_invalid_bytes(server: FaztServer, app: str) -> None:
    cases = {
        "ascii": b"hello",
        "two-three-four": "é€😀𐍈".encode(),
        "max": "\U0010ffff".encode(),
        "lone-ff": b"a\xffb",
        "lone-continuation": b"\x80x\xbf",
        "overlong": b"\xc0\xaf|\xe0\x80\xaf|\xf0\x80\x80\xaf",
        "surrogate": b"\xed\xa0\x80",
        "above-max": b"\xf4\x90\x80\x80",
        "f5": b"\xf5\x80",
        "nul": b"a\x00b",
    }
    for name, data in cases.items():
        put_bytes(server, app, f"utf8/{name}", data)
        got = ok(server, app, "get", f"utf8/{name}", text=True)
        assert got["size"] == len(data) and got["sha256"] == sha(data), name
        assert got["text"] == data.decode("utf-8", "replace"), name
        assert got["contentType"] == "application/octet-stream"


def test_text_replaces_a_truncated_sequence_with_one_replacement_character(
        server: FaztServer, app: str) -> None:
    # TextDecoder (WHATWG "maximal subpart" practice, as Python's decoder) turns a truncated
    # multi-byte sequence into ONE U+FFFD; the runtime says it decodes as TextDecoder does.
    cases = {
        "cut-3": b"\xe2\x82A",          # the first two bytes of "€", then "A"
        "cut-4": b"\xf0\x9f\x98A",      # the first three bytes of "😀", then "A"
        "cut-end": b"x\xf0\x9f\x98",
    }
    for name, data in cases.items():
        put_bytes(server, app, f"utf8cut/{name}", data)
        got = ok(server, app, "get", f"utf8cut/{name}", text=True)
        assert got["text"] == data.decode("utf-8", "replace"), (name, got["text"])


LARGE_UNIT = "a€😀é"       # 1 + 3 + 4 + 2 UTF-8 bytes, 5 UTF-16 units
LARGE_COUNT = 400_000      # 4,000,000 bytes: under the 4 MiB limit


def test_text_of_a_large_blob_decodes(server: FaztServer, app: str) -> None:
    out = answer(server, app, "textbytes", key="text/large-bytes", unit=LARGE_UNIT,
                 unitBytes=list(LARGE_UNIT.encode("utf-8")), count=LARGE_COUNT)
    assert out["ok"], out
    assert out["result"] == {"size": 10 * LARGE_COUNT, "length": 5 * LARGE_COUNT,
                             "same": True}


def test_a_large_text_round_trips_with_more_memory(server: FaztServer) -> None:
    deploy(server, "blobs-bigmem", {**blobs_app(), "manifest.json": json.dumps(
        {"capabilities": {"blobs": {}}, "limits": {"memory_mb": 512}})})
    out = answer(server, "blobs-bigmem", "text", key="t", unit=LARGE_UNIT, count=LARGE_COUNT)
    assert out["ok"], out
    assert out["result"] == {"size": 10 * LARGE_COUNT, "length": 5 * LARGE_COUNT,
                             "same": True}
    meta = ok(server, "blobs-bigmem", "list", "t")["items"][0]
    assert meta["sha256"] == sha((LARGE_UNIT * LARGE_COUNT).encode("utf-8"))
    assert meta["contentType"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("count", [150_000, 200_000])
def test_a_text_of_two_mb_can_be_put_from_a_default_worker(server: FaztServer, app: str,
                                                           count: int) -> None:
    """A string of 1.5-2 MB put with the default js_memory_mb (128): the same size as a
    Uint8Array fits (test_bytes_made_in_js_round_trip puts 4 MiB)."""
    r = post(server, app, "text", key=f"text/plain-{count}", unit="a" * 10, count=count)
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"size": 10 * count, "length": 10 * count, "same": True}


def test_repeated_large_blobs_fit_in_a_worker(server: FaztServer) -> None:
    """15 requests each putting and getting 2 MiB: the worker collects its garbage when idle
    after 4 MiB crossed its pipes, so none runs out of memory (default js_memory_mb)."""
    deploy(server, "blobs-repeat", blobs_app())
    data = gen(2 * MIB, seed=3)
    statuses = []
    for _ in range(15):
        r = post(server, "blobs-repeat", "roundtrip", key="big", size=2 * MIB, seed=3)
        statuses.append(r.status_code)
        if r.status_code == 200:
            out = r.json()
            assert out["ok"], out
            assert out["result"]["sum"] == weighted_sum(data)
            assert out["result"]["sha256"] == sha(data)
    assert statuses == [200] * 15


def test_get_delete_list(server: FaztServer, app: str) -> None:
    assert ok(server, app, "get", "gdl/missing") is None
    assert ok(server, app, "delete", "gdl/missing") is False
    keys = [f"gdl/{i:02d}" for i in range(12)] + ["gdl/é", "gdl/😀", "gdl/\uff61"]
    for i, key in enumerate(reversed(keys)):
        put_gen(server, app, key, i + 1, seed=i)
    put_gen(server, app, "gdm", 1)           # just outside the prefix
    seen: list[str] = []
    cursor = None
    pages = 0
    for _ in range(20):
        page = ok(server, app, "list", "gdl/", {"limit": 5, "cursor": cursor})
        pages += 1
        seen += [item["key"] for item in page["items"]]
        assert all(set(item) == {"key", "size", "contentType", "sha256", "public",
                                 "updatedAt"} for item in page["items"])
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert pages == 3
    uni = ok(server, app, "list", "gdl/\u00e9")["items"]
    assert [i["key"] for i in uni] == ["gdl/é"]
    assert ok(server, app, "delete", "gdl/00") is True
    assert ok(server, app, "get", "gdl/00") is None
    assert ok(server, app, "delete", "gdl/00") is False
    assert "gdl/00" not in [i["key"] for i in ok(server, app, "list", "gdl/")["items"]]
    assert refused(server, app, "list", "gdl/", {"limit": 0})["code"] == "capability_error"
    assert refused(server, app, "list", "gdl/", {"cursor": "!!"})["code"] == "capability_error"


def test_usage_is_reported_for_blobs(server: FaztServer) -> None:
    deploy(server, "blobs-usage", blobs_app())
    put_gen(server, "blobs-usage", "a", 1000)
    ok(server, "blobs-usage", "put", "é", "xyz")
    assert usage(server, "blobs-usage") == {"blobs": 1 + 1000 + 2 + 3}
    ok(server, "blobs-usage", "delete", "a")
    assert usage(server, "blobs-usage") == {"blobs": 5}


def test_quota_is_a_413_and_nothing_is_stored(server: FaztServer) -> None:
    deploy(server, "blobs-quota", blobs_app(blobs={"quota_mb": 1}))
    put_gen(server, "blobs-quota", "a", 700 * KIB)
    r = post(server, "blobs-quota", "gen", key="b", size=400 * KIB, uncaught=True)
    assert_error(r, 413, "storage_quota")
    assert ok(server, "blobs-quota", "get", "b") is None
    assert usage(server, "blobs-quota") == {"blobs": 1 + 700 * KIB}


def test_user_methods_need_a_signed_in_user(server: FaztServer, app: str) -> None:
    for op, args in (("user.put", ["x", "data"]), ("user.get", ["x"]), ("user.list", [""]),
                     ("user.delete", ["x"]), ("user.url", ["x"])):
        out = refused(server, app, op, *args)
        assert out["code"] == "auth_required", (op, out)
    r = post(server, app, "op", op="user.get", args=["x"], uncaught=True)
    assert_error(r, 401, "auth_required")


# -- 2. serving /_fazt/blobs/<key> --------------------------------------------------------------

def test_a_signed_url_serves_the_blob(server: FaztServer, app: str) -> None:
    data = gen(5000, seed=9)
    put_gen(server, app, "serve/a.png", 5000, seed=9, contentType="image/png")
    url = signed_url(server, app, "serve/a.png", expiresIn=600)
    r = fetch(server, app, url)
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == "5000"
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"] == f'"{sha(data)}"'
    assert r.headers["cache-control"] == "private, no-cache"

    # If-None-Match: 304 with no body
    etag = r.headers["etag"]
    for match in (etag, f'W/{etag}', f'"other", {etag}', "*"):
        not_modified = fetch(server, app, url, headers={"if-none-match": match})
        assert not_modified.status_code == 304, (match, not_modified.text)
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        assert not_modified.headers["content-security-policy"] == "sandbox"
    changed = fetch(server, app, url, headers={"if-none-match": '"not-the-sha"'})
    assert changed.status_code == 200 and changed.content == data

    # HEAD: the headers, no body
    head = fetch(server, app, url, "HEAD")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "5000"
    assert head.headers["content-type"] == "image/png"
    assert head.headers["etag"] == etag

    # only GET and HEAD
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert_error(fetch(server, app, url, method), 405, "method_not_allowed")

    # a text blob is served with its own content type; an overwrite changes the ETag
    ok(server, app, "put", "serve/a.png", "now text")
    r2 = fetch(server, app, url)
    assert r2.status_code == 200 and r2.content == b"now text"
    assert r2.headers["content-type"] == "text/plain; charset=utf-8"
    assert r2.headers["etag"] == f'"{sha(b"now text")}"'
    assert fetch(server, app, url, headers={"if-none-match": etag}).status_code == 200


def test_the_largest_blob_is_served_whole(server: FaztServer, app: str) -> None:
    data = gen(MAX_BLOB, seed=1)
    put_gen(server, app, "serve/max", MAX_BLOB, seed=1)
    r = fetch(server, app, signed_url(server, app, "serve/max"))
    assert r.status_code == 200
    assert len(r.content) == MAX_BLOB and r.content == data


def test_an_html_blob_is_sandboxed(server: FaztServer, app: str) -> None:
    ok(server, app, "put", "serve/page.html", "<script>alert(1)</script>",
       {"contentType": "text/html; charset=utf-8", "public": True})
    r = fetch(server, app, "/_fazt/blobs/serve/page.html")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_bad_signatures_are_403(server: FaztServer, app: str) -> None:
    ok(server, app, "put", "sig/k", "secret")
    url = signed_url(server, app, "sig/k")
    assert fetch(server, app, url).status_code == 200
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    tampered = [
        with_query(url, sig=flipped),
        with_query(url, sig=sig[:-1]),
        with_query(url, sig=""),
        with_query(url, sig=None),
        with_query(url, expires=str(int(expires) + 1)),
        with_query(url, expires=None),
        with_query(url, expires="1"),              # long expired (and not what was signed)
        with_query(url, expires="-5"),
        with_query(url, scope="u:alice"),          # another scope
        with_query(url, expires="9" * 20),
    ]
    for bad in tampered:
        error = assert_error(fetch(server, app, bad), 403, "forbidden")
        assert "signature" in error["message"], bad
    # the signature is for this key only
    ok(server, app, "put", "sig/other", "other")
    other = url.replace("/sig/k?", "/sig/other?")
    assert_error(fetch(server, app, other), 403, "forbidden")
    # a bad signature gets its 403 even when the blob does not exist
    missing = with_query(signed_url(server, app, "sig/missing"), sig=flipped)
    assert_error(fetch(server, app, missing), 403, "forbidden")


@pytest.mark.parametrize("query", [
    {"expires": "\u00b2", "sig": "x"},             # "²".isdigit() is True; int("²") fails
    {"expires": "\u2460", "sig": "x"},
    {"sig": "\u00e9"},                              # non-ASCII sig: compare_digest TypeError
    {"sig": "abc\U0001f600"},
])
def test_non_ascii_expiry_or_signature_is_403_not_500(server: FaztServer, app: str,
                                                      query: dict[str, str]) -> None:
    ok(server, app, "put", "sig/ascii", "x")
    url = signed_url(server, app, "sig/ascii")
    r = fetch(server, app, with_query(url, **query))
    assert_error(r, 403, "forbidden")


def test_many_query_fields_are_not_a_500(server: FaztServer, app: str) -> None:
    ok(server, app, "put", "sig/fields", "x", {"public": True})
    assert fetch(server, app, "/_fazt/blobs/sig/fields").status_code == 200
    r = fetch(server, app, "/_fazt/blobs/sig/fields?" + "&".join(f"f{i}=1" for i in range(9)))
    assert r.status_code < 500, (r.status_code, r.text)


def test_private_and_missing_blobs_are_the_same_404(server: FaztServer, app: str) -> None:
    ok(server, app, "put", "hide/private", "secret")
    private = fetch(server, app, "/_fazt/blobs/hide/private")
    missing = fetch(server, app, "/_fazt/blobs/hide/missing")
    a = assert_error(private, 404, "not_found")
    b = assert_error(missing, 404, "not_found")
    assert a["message"] == b["message"]
    assert "secret" not in private.text
    # HEAD too, with no body
    for path in ("/_fazt/blobs/hide/private", "/_fazt/blobs/hide/missing"):
        head = fetch(server, app, path, "HEAD")
        assert head.status_code == 404 and head.content == b""
    # a signed URL for a missing blob is a 404 too, as is the bare prefix
    assert_error(fetch(server, app, signed_url(server, app, "hide/missing")), 404, "not_found")
    assert_error(fetch(server, app, "/_fazt/blobs/"), 404, "not_found")
    # a deleted blob's URL stops working
    url = signed_url(server, app, "hide/private")
    assert fetch(server, app, url).status_code == 200
    assert ok(server, app, "delete", "hide/private") is True
    assert_error(fetch(server, app, url), 404, "not_found")


def test_a_public_blob_is_served_without_a_signature(server: FaztServer, app: str) -> None:
    data = gen(300, seed=4)
    put_gen(server, app, "pub/logo.svg", 300, seed=4, contentType="image/svg+xml",
            public=True)
    r = fetch(server, app, "/_fazt/blobs/pub/logo.svg")
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["content-type"] == "image/svg+xml"
    assert r.headers["cache-control"] == "public, no-cache"
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["etag"] == f'"{sha(data)}"'
    # its signed URL works too; a bad signature is still refused
    url = signed_url(server, app, "pub/logo.svg")
    assert fetch(server, app, url).content == data
    assert_error(fetch(server, app, with_query(url, sig="AAAA")), 403, "forbidden")
    # made private again, it is no longer served unsigned
    put_gen(server, app, "pub/logo.svg", 300, seed=4, public=False)
    assert_error(fetch(server, app, "/_fazt/blobs/pub/logo.svg"), 404, "not_found")
    assert fetch(server, app, url).status_code == 200


@pytest.mark.parametrize("key", ["odd/with space.txt", "odd/ünïcödé 日本/😀.png",
                                 "odd/100%/a%2Fb%", "odd/a/b/c/d", "odd/q?x=1&sig=y#frag",
                                 "odd/+plus+;semi,comma", "odd/%00", "odd/\\back"])
def test_odd_keys_round_trip_through_url(server: FaztServer, app: str, key: str) -> None:
    data = key.encode("utf-8") + b"!"
    put_bytes(server, app, key, data)
    url = signed_url(server, app, key)
    r = fetch(server, app, url)
    assert r.status_code == 200, (key, url, r.text)
    assert r.content == data
    # the same spelled key is not another key
    assert ok(server, app, "get", key)["sha256"] == sha(data)


def test_another_apps_host_does_not_serve_this_apps_blob(server: FaztServer, app: str) -> None:
    deploy(server, "blobs-other", blobs_app())
    ok(server, app, "put", "cross/k", "mine", {"public": True})
    url = signed_url(server, app, "cross/k")
    # the other app's host, this app's signed URL: refused (the signature names the app)
    r = fetch(server, "blobs-other", url)
    assert r.status_code in (403, 404), r.text
    assert b"mine" not in r.content
    # unsigned, the other host looks in its own blobs
    assert_error(fetch(server, "blobs-other", "/_fazt/blobs/cross/k"), 404, "not_found")
    ok(server, "blobs-other", "put", "cross/k", "theirs", {"public": True})
    assert fetch(server, "blobs-other", "/_fazt/blobs/cross/k").content == b"theirs"
    assert fetch(server, app, "/_fazt/blobs/cross/k").content == b"mine"
    r = fetch(server, "blobs-other", url)
    assert r.status_code in (403, 404) and b"mine" not in r.content
    # the other app's own signed URL serves its own blob only
    theirs = signed_url(server, "blobs-other", "cross/k")
    assert fetch(server, "blobs-other", theirs).content == b"theirs"
    assert fetch(server, app, theirs).status_code in (403, 404)
    # a host that is no app serves no blob
    with httpx.Client(base_url=server.url, headers={"host": "no-such-app.localhost"},
                      timeout=30, trust_env=False) as client:
        assert client.get("/_fazt/blobs/cross/k").status_code == 404


# -- 3. grants ----------------------------------------------------------------------------------

NO_BLOBS_JS = """\
module.exports = async function (request, caps) {
  if (request.path === '/api/call') return { json: await caps.blobs.get('k') };
  return { json: { blobs: typeof caps.blobs, keys: Object.keys(caps).sort() } };
};
"""


def test_an_app_without_blobs_in_its_manifest_is_refused_blobs(server: FaztServer) -> None:
    deploy(server, "noblobs", {"manifest.json": json.dumps({"capabilities": {"kv": {}}}),
                               "api/main.js": NO_BLOBS_JS})
    r = call(server, "noblobs", "GET", "/api/x")
    assert r.json() == {"blobs": "object", "keys": ["blobs", "budget", "docs", "kv", "log", "net"]}
    # every call is refused, naming the manifest entry to add
    error = assert_error(call(server, "noblobs", "GET", "/api/call"), 403,
                         "capability_not_granted")
    assert '"capabilities": {"blobs": {}}' in error["message"]


def test_withheld_blobs_are_403_capability_not_granted(server: FaztServer) -> None:
    deploy(server, "blobs-withheld", blobs_app())
    ok(server, "blobs-withheld", "put", "kept", "still here", {"public": True})
    assert fetch(server, "blobs-withheld", "/_fazt/blobs/kept").content == b"still here"
    with server.admin() as admin:
        r = admin.post("/api/apps/blobs-withheld/policy", json={"withhold": ["blobs"]})
    assert r.status_code == 200, r.text
    try:
        out = refused(server, "blobs-withheld", "get", "kept")
        assert out["code"] == "capability_not_granted", out
        assert "withholds 'blobs'" in out["message"]
        r = post(server, "blobs-withheld", "op", op="put", args=["k", "v"], uncaught=True)
        assert_error(r, 403, "capability_not_granted")
        r = post(server, "blobs-withheld", "gen", key="k", size=10, uncaught=True)
        assert_error(r, 403, "capability_not_granted")
        # its URLs stop working too, with the 404 of a missing blob
        assert_error(fetch(server, "blobs-withheld", "/_fazt/blobs/kept"), 404, "not_found")
    finally:
        with server.admin() as admin:
            r = admin.post("/api/apps/blobs-withheld/policy", json={"reset": True})
        assert r.status_code == 200, r.text
    assert ok(server, "blobs-withheld", "get", "kept", text=True)["text"] == "still here"
    assert fetch(server, "blobs-withheld", "/_fazt/blobs/kept").status_code == 200
