"""The net capability against a real `fazt run`: apps call a local upstream (plain HTTP and
HTTPS with a trustme CA) through ``net.fetch``.

The server runs with the ``net_test_hosts`` testing hook: up.test, tls.test and other.test
resolve to 127.0.0.1 and only those names may reach it; every other name and address is judged
as in production (so ``localhost`` and ``127.0.0.1`` are refused). Nothing leaves the machine.
Covers the reliability plan's T22 (amplification, bombs), T24-T27 through the app (addresses,
redirects, schemes, proxies from the environment, ports), secrets, limits, operator rules, the
call log and the budget.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import FaztServer, call, deploy, start_server
from tests.integration.upstream import Upstream, start_upstream

pytestmark = pytest.mark.integration

TEST_HOSTS = "up.test=127.0.0.1,tls.test=127.0.0.1,other.test=127.0.0.1"
SECRET_VALUE = "s3cr3t-T0KEN-value-0123456789"

NET_JS = """\
// (a long text is not sent back: a 1 MB string in a JSON response does not fit in a 128 MB
// worker, a limit of the response path, not of net.fetch)
function shape(r) {
  const size = r.bytes().length;
  return { status: r.status, ok: r.ok, headers: r.headers, url: r.url,
           redirected: r.redirected, cached: r.cached,
           text: size <= 65536 ? r.text() : r.text().length, size };
}
module.exports = async function (request, caps) {
  const b = request.body || {};
  const net = caps.net;
  switch (request.path) {
    case '/api/fetch':
      if (b.uncaught) return { json: shape(await net.fetch(b.url, b.opts)) };
      try { return { json: shape(await net.fetch(b.url, b.opts)) }; }
      catch (e) { return { json: { error: e.code, message: e.message } }; }
    case '/api/bytes': {
      const data = new Uint8Array(b.n);
      for (let i = 0; i < b.n; i++) data[i] = i % 251;
      return { json: shape(await net.fetch(b.url, { method: 'POST', body: data })) };
    }
    case '/api/many': {
      // b.n calls, b.parallel at a time; answers the count of each outcome
      const outcomes = {};
      let started = 0;
      async function worker() {
        while (started < b.n) {
          started++;
          let outcome;
          try { outcome = String((await net.fetch(b.url)).status); }
          catch (e) { outcome = e.code; }
          outcomes[outcome] = (outcomes[outcome] || 0) + 1;
        }
      }
      const workers = [];
      for (let i = 0; i < b.parallel; i++) workers.push(worker());
      await Promise.all(workers);
      return { json: outcomes };
    }
    case '/api/log': {
      const r = await net.fetch(b.url, b.opts);
      console.log('fetched', JSON.stringify(shape(r)), Object.keys(r).join(','));
      return { json: Object.keys(r) };
    }
  }
  return { status: 404, body: 'no route' };
};
"""


def net_app(allow: list[str], *, secrets: list[str] | None = None,
            timeout_ms: int | None = None, request_ms: int | None = None) -> dict[str, str]:
    net: dict[str, Any] = {"allow": allow}
    if secrets:
        net["secrets"] = secrets
    if timeout_ms is not None:
        net["timeoutMs"] = timeout_ms
    manifest: dict[str, Any] = {"capabilities": {"net": net}}
    if request_ms is not None:
        manifest["limits"] = {"request_ms": request_ms}
    return {"manifest.json": json.dumps(manifest), "api/main.js": NET_JS}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = start_upstream(["tls.test"])
    yield up
    up.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[FaztServer]:
    base = tmp_path_factory.mktemp("net")
    ca = base / "ca.pem"
    ca.write_bytes(upstream.ca_pem)
    srv = start_server(base / "data", env={"FAZT_NET_TEST_HOSTS": TEST_HOSTS,
                                           "FAZT_NET_CA_FILE": str(ca)})
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def fresh_record(upstream: Upstream) -> None:
    upstream.record.clear()


def fetch(server: FaztServer, app: str, url: str, **opts: Any) -> dict[str, Any]:
    r = call(server, app, "POST", "/api/fetch", json={"url": url, "opts": opts or None})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def fetch_uncaught(server: FaztServer, app: str, url: str, **opts: Any) -> httpx.Response:
    return call(server, app, "POST", "/api/fetch",
                json={"url": url, "opts": opts or None, "uncaught": True})


def refused(server: FaztServer, app: str, url: str, code: str, **opts: Any) -> str:
    out = fetch(server, app, url, **opts)
    assert out.get("error") == code, out
    return str(out["message"])


def admin(server: FaztServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with server.admin() as client:
        return client.request(method, path, **kwargs)


def cli_ok(server: FaztServer, *args: str, input: str | None = None) -> str:
    out = server.cli(*args, input=input)
    assert out.returncode == 0, (out.stdout, out.stderr)
    return out.stdout + out.stderr


def net_log(server: FaztServer, app: str, *, wait_for: int) -> list[dict[str, Any]]:
    """The app's logged calls, once at least ``wait_for`` are written (a bounded long poll:
    entries are written in batches)."""
    after = 0
    calls: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while len(calls) < wait_for and time.monotonic() < deadline:
        r = admin(server, "GET", "/api/net/log", params={"app": app, "n": 1000,
                                                         "after": after, "wait": 5})
        assert r.status_code == 200, r.text
        calls += r.json()["calls"]
        after = r.json()["next"]
    return calls


# -- fetching -----------------------------------------------------------------------------------


def test_a_get_reaches_the_upstream_with_the_original_host(server: FaztServer,
                                                           upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "plain", net_app([f"http://up.test:{port}"]))
    out = fetch(server, "plain", f"http://up.test:{port}/echo?x=1#frag")
    assert (out["status"], out["ok"], out["redirected"], out["cached"]) == (200, True, False, False)
    assert out["url"] == f"http://up.test:{port}/echo?x=1"
    seen = json.loads(out["text"])
    assert seen["headers"]["host"] == f"up.test:{port}"
    assert seen["query"] == "x=1"
    assert seen["headers"]["user-agent"].startswith("fazt/")
    assert out["headers"]["content-type"] == "application/json"


def test_https_checks_the_certificate_against_the_original_host(server: FaztServer,
                                                               upstream: Upstream) -> None:
    port = upstream.https_port
    deploy(server, "tls", net_app([f"tls.test:{port}", f"up.test:{port}"]))
    out = fetch(server, "tls", f"https://tls.test:{port}/echo")
    assert out["status"] == 200, out
    assert json.loads(out["text"])["headers"]["host"] == f"tls.test:{port}"
    # the same address under a name the certificate does not carry: refused by TLS
    message = refused(server, "tls", f"https://up.test:{port}/echo", "net_upstream_error")
    assert "certificate" in message.lower() or "ssl" in message.lower(), message


def test_methods_bodies_and_headers(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "bodies", net_app([f"http://up.test:{port}"]))
    url = f"http://up.test:{port}/echo"
    seen = json.loads(fetch(server, "bodies", url, method="put", body="héllo",
                            headers={"X-Thing": "1", "Accept": "text/plain"})["text"])
    assert (seen["method"], seen["body"]) == ("PUT", "héllo")
    assert seen["headers"]["x-thing"] == "1"
    assert seen["headers"]["content-type"] == "text/plain;charset=UTF-8"
    seen = json.loads(fetch(server, "bodies", url, method="POST", json={"a": [1, 2]})["text"])
    assert json.loads(seen["body"]) == {"a": [1, 2]}
    assert seen["headers"]["content-type"] == "application/json"
    r = call(server, "bodies", "POST", "/api/bytes", json={"url": url, "n": 70_000})
    assert r.status_code == 200, r.text
    sent = upstream.record.requests[-1]
    assert sent["headers"]["content-length"] == "70000"
    assert sent["sha256"] == hashlib.sha256(bytes(i % 251 for i in range(70_000))).hexdigest()
    assert fetch(server, "bodies", url, method="HEAD")["size"] == 0


@pytest.mark.parametrize(("opts", "code"), [
    ({"headers": {"Host": "evil.test"}}, "capability_error"),
    ({"headers": {"Content-Length": "5"}}, "capability_error"),
    ({"headers": {"X-A": "a\r\nX-Injected: 1"}}, "capability_error"),
    ({"headers": {"bad name": "1"}}, "capability_error"),
    ({"method": "CONNECT"}, "capability_error"),
    ({"method": "GET", "body": "x"}, "capability_error"),
    ({"body": {"an": "object"}, "method": "POST"}, "capability_error"),
    ({"timeoutMs": 0}, "capability_error"),
    ({"nope": 1}, "capability_error"),
    ({"secret": "NOT_LISTED"}, "net_denied"),
])
def test_malformed_calls_are_refused_before_anything_is_sent(
        server: FaztServer, upstream: Upstream, opts: dict[str, Any], code: str) -> None:
    port = upstream.http_port
    deploy(server, "badcalls", net_app([f"http://up.test:{port}"]))
    refused(server, "badcalls", f"http://up.test:{port}/echo", code, **opts)
    assert upstream.record.requests == []


@pytest.mark.parametrize(("url", "code"), [
    ("ftp://up.test/x", "net_bad_url"),
    ("file:///etc/passwd", "net_bad_url"),
    ("http://user:pw@up.test/", "net_bad_url"),
    ("http://2130706433/", "net_bad_url"),
    ("http://0x7f.1/", "net_bad_url"),
    ("http://127.1/", "net_bad_url"),
    ("/relative", "net_bad_url"),
    ("http://up.test/ with space", "net_bad_url"),
])
def test_bad_urls_are_refused(server: FaztServer, upstream: Upstream, url: str,
                              code: str) -> None:
    deploy(server, "badurls", net_app([f"http://up.test:{upstream.http_port}"]))
    refused(server, "badurls", url, code)
    assert upstream.record.requests == []


# -- the allowlist: scheme, host and port ------------------------------------------------------


def test_only_what_the_manifest_allows(server: FaztServer, upstream: Upstream) -> None:
    port, tls = upstream.http_port, upstream.https_port
    deploy(server, "allow", net_app([f"http://up.test:{port}", f"*.other.test:{tls}"]))
    assert fetch(server, "allow", f"http://up.test:{port}/echo")["status"] == 200
    message = refused(server, "allow", f"http://other.test:{port}/echo", "net_denied")
    assert f"http://other.test:{port}" in message and "manifest.json" in message
    # https on the port allowed for http, and http on the default port: both refused
    refused(server, "allow", f"https://up.test:{port}/echo", "net_denied")
    refused(server, "allow", "http://up.test/echo", "net_denied")
    # a wildcard covers subdomains, never the apex
    refused(server, "allow", f"https://other.test:{tls}/echo", "net_denied")
    assert len(upstream.record.requests) == 1


def test_a_bare_https_entry_is_port_443_only(server: FaztServer, upstream: Upstream) -> None:
    deploy(server, "https443", net_app(["up.test"]))
    refused(server, "https443", f"https://up.test:{upstream.https_port}/echo", "net_denied")
    refused(server, "https443", f"http://up.test:{upstream.http_port}/echo", "net_denied")
    assert upstream.record.requests == []


@pytest.mark.parametrize("allow", [["*"], ["*.test"], ["ftp://up.test"], ["up.test:0"],
                                   ["up.test/path"], [], "up.test"])
def test_a_manifest_with_a_bad_allow_entry_is_not_deployed(server: FaztServer,
                                                           allow: Any) -> None:
    files = net_app(["up.test"])
    files["manifest.json"] = json.dumps({"capabilities": {"net": {"allow": allow}}})
    r = server.deploy("badmanifest", files)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_manifest"
    assert "capabilities.net.allow" in error["message"]


def test_an_app_without_the_capability_is_told_what_to_add(server: FaztServer) -> None:
    deploy(server, "nonet", {"manifest.json": json.dumps({"capabilities": {"kv": {}}}),
                             "api/main.js": NET_JS})
    out = fetch(server, "nonet", "http://up.test/echo")
    assert out["error"] == "capability_not_granted"
    assert '"net"' in out["message"]


# -- SSRF through the app (T24-T27) ------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "[::1]",
                                  "169.254.169.254", "10.0.0.1", "[fd00:ec2::254]", "0.0.0.0"])
def test_private_addresses_are_blocked_even_when_the_manifest_allows_them(
        server: FaztServer, upstream: Upstream, host: str) -> None:
    port = upstream.http_port
    deploy(server, "ssrf", net_app([f"http://{host}:{port}"]))
    message = refused(server, "ssrf", f"http://{host}:{port}/echo", "net_blocked_address")
    assert "public" in message
    assert upstream.record.requests == []


def test_redirects_are_checked_hop_by_hop(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "redirects", net_app([f"http://up.test:{port}", f"http://127.0.0.1:{port}",
                                         f"http://other.test:{port}"]))
    base = f"http://up.test:{port}/to?u="
    # to an address the manifest allows but the guard refuses
    refused(server, "redirects", f"{base}http://127.0.0.1:{port}/echo", "net_blocked_address")
    # to a host the manifest does not allow
    refused(server, "redirects", f"{base}http://tls.test:{port}/echo", "net_denied")
    # to other schemes
    refused(server, "redirects", f"{base}file:///etc/passwd", "net_bad_url")
    refused(server, "redirects", f"{base}gopher://up.test/", "net_bad_url")
    # to https on a port not allowed (a scheme change is a new entry to match)
    refused(server, "redirects", f"{base}https://up.test:{port}/echo", "net_denied")
    assert [r["path"] for r in upstream.record.requests] == ["/to"] * 5
    # an allowed hop is followed, and the answer says so
    out = fetch(server, "redirects", f"{base}http://other.test:{port}/echo")
    assert (out["status"], out["redirected"], out["url"]) == \
        (200, True, f"http://other.test:{port}/echo")


def test_at_most_five_redirects(server: FaztServer, upstream: Upstream) -> None:
    deploy(server, "chain", net_app([f"http://up.test:{upstream.http_port}"]))
    message = refused(server, "chain", f"http://up.test:{upstream.http_port}/chain/0",
                      "net_upstream_error")
    assert "redirects" in message
    assert len(upstream.record.requests) == 6       # the call and five hops


def test_proxies_in_the_environment_are_ignored(tmp_path: Any, upstream: Upstream) -> None:
    proxy = start_upstream(["proxy.test"])
    proxy_url = f"http://127.0.0.1:{proxy.http_port}"
    srv = start_server(tmp_path / "data", env={
        "FAZT_NET_TEST_HOSTS": TEST_HOSTS, "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url,
        "ALL_PROXY": proxy_url, "http_proxy": proxy_url, "https_proxy": proxy_url,
        "NO_PROXY": ""})
    try:
        deploy(srv, "proxied", net_app([f"http://up.test:{upstream.http_port}"]))
        assert fetch(srv, "proxied", f"http://up.test:{upstream.http_port}/echo")["status"] \
            == 200
        assert len(upstream.record.requests) == 1
        assert proxy.record.requests == []
    finally:
        srv.stop()
        proxy.close()


# -- limits (T22) -------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [1, 20, 100])
def test_a_request_makes_at_most_ten_calls(server: FaztServer, upstream: Upstream,
                                           parallel: int) -> None:
    deploy(server, "many", net_app([f"http://up.test:{upstream.http_port}"]))
    r = call(server, "many", "POST", "/api/many",
             json={"url": f"http://up.test:{upstream.http_port}/echo", "n": 1000,
                   "parallel": parallel})
    assert r.status_code == 200, r.text
    outcomes = r.json()
    assert outcomes.pop("200") == 10
    if parallel <= 64:
        assert outcomes == {"net_too_many_calls": 990}
    else:
        # past 64 capability calls in flight the worker refuses more (too_many_calls) before
        # they reach the server: every call beyond the ten is refused all the same
        assert set(outcomes) == {"net_too_many_calls", "too_many_calls"}, outcomes
        assert sum(outcomes.values()) == 990
    assert len(upstream.record.requests) == 10
    # the count is per request: the next one may call again
    assert fetch(server, "many", f"http://up.test:{upstream.http_port}/echo")["status"] == 200


def test_at_most_six_calls_at_once(server: FaztServer, upstream: Upstream) -> None:
    deploy(server, "parallel", net_app([f"http://up.test:{upstream.http_port}"]))
    result: dict[str, Any] = {}

    def run() -> None:
        result["r"] = call(server, "parallel", "POST", "/api/many",
                           json={"url": f"http://up.test:{upstream.http_port}/hold", "n": 10,
                                 "parallel": 10})

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while upstream.record.holding < 6 and time.monotonic() < deadline:
        time.sleep(0.01)    # polling the upstream's count, bounded
    held = upstream.record.holding
    upstream.release()
    worker.join(30)
    assert held == 6
    assert upstream.record.most_held == 6
    assert result["r"].json() == {"200": 10}


@pytest.mark.parametrize(("path", "code"), [("/bomb", "net_too_large"),
                                            ("/big?n=1048577", "net_too_large")])
def test_responses_over_the_limit(server: FaztServer, upstream: Upstream, path: str,
                                  code: str) -> None:
    deploy(server, "large", net_app([f"http://up.test:{upstream.http_port}"]))
    refused(server, "large", f"http://up.test:{upstream.http_port}{path}", code)
    out = fetch(server, "large", f"http://up.test:{upstream.http_port}/big?n=1048576")
    assert out["size"] == 1048576


def test_a_request_body_over_the_limit(server: FaztServer, upstream: Upstream) -> None:
    deploy(server, "bigbody", net_app([f"http://up.test:{upstream.http_port}"]))
    r = call(server, "bigbody", "POST", "/api/bytes",
             json={"url": f"http://up.test:{upstream.http_port}/echo", "n": 1048577})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "net_too_large"
    assert upstream.record.requests == []


@pytest.mark.parametrize(("code", "status"), [("net_denied", 403), ("net_bad_url", 400),
                                              ("net_blocked_address", 403)])
def test_an_uncaught_error_reaches_the_client_with_its_status(
        server: FaztServer, upstream: Upstream, code: str, status: int) -> None:
    port = upstream.http_port
    deploy(server, "uncaught", net_app([f"http://up.test:{port}", f"http://127.0.0.1:{port}"]))
    url = {"net_denied": f"http://other.test:{port}/", "net_bad_url": "ftp://x/",
           "net_blocked_address": f"http://127.0.0.1:{port}/"}[code]
    r = fetch_uncaught(server, "uncaught", url)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


# -- time ---------------------------------------------------------------------------------------


def test_the_budget_ends_a_slow_download_and_the_app_stays_usable(
        server: FaztServer, upstream: Upstream) -> None:
    deploy(server, "slow", net_app([f"http://up.test:{upstream.http_port}"], request_ms=1500))
    started = time.monotonic()
    r = fetch_uncaught(server, "slow", f"http://up.test:{upstream.http_port}/trickle")
    elapsed = time.monotonic() - started
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "net_timeout"
    assert elapsed < 1.5 + 0.5, elapsed
    for _ in range(3):
        assert fetch(server, "slow", f"http://up.test:{upstream.http_port}/echo")["status"] \
            == 200


@pytest.mark.parametrize("where", ["call", "manifest"])
def test_timeout_ms_ends_a_call_sooner(server: FaztServer, upstream: Upstream,
                                       where: str) -> None:
    url = f"http://up.test:{upstream.http_port}/trickle"
    deploy(server, "timeouts", net_app([f"http://up.test:{upstream.http_port}"],
                                       timeout_ms=300 if where == "manifest" else None))
    started = time.monotonic()
    refused(server, "timeouts", url, "net_timeout",
            **({"timeoutMs": 300} if where == "call" else {}))
    assert time.monotonic() - started < 1.5


# -- secrets ------------------------------------------------------------------------------------


def test_a_secret_is_injected_and_never_seen(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "secretive", net_app([f"http://up.test:{port}"], secrets=["TOKEN"]))
    cli_ok(server, "secret", "set", "TOKEN", "--app", "secretive", "--as", "bearer",
           input=SECRET_VALUE + "\n")
    out = fetch(server, "secretive", f"http://up.test:{port}/echo", secret="TOKEN")
    assert upstream.record.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET_VALUE}"
    # the upstream echoed it in its body and a header: the app sees neither
    assert SECRET_VALUE not in json.dumps(out)
    assert json.loads(out["text"])["headers"]["authorization"] == "Bearer [secret]"
    assert out["headers"]["x-echo"] == "Bearer [secret]"
    # whatever the handler logs of the answer (every property) does not carry it either
    r = call(server, "secretive", "POST", "/api/log",
             json={"url": f"http://up.test:{port}/echo", "opts": {"secret": "TOKEN"}})
    assert r.status_code == 200 and "text" in r.json()
    listed = cli_ok(server, "secret", "list")
    assert "TOKEN" in listed and SECRET_VALUE not in listed
    assert SECRET_VALUE not in admin(server, "GET", "/api/net/secrets").text
    calls = net_log(server, "secretive", wait_for=2)
    assert SECRET_VALUE not in json.dumps(calls)
    logs = admin(server, "GET", "/api/apps/secretive/logs").text
    assert "fetched" in logs and SECRET_VALUE not in logs
    assert SECRET_VALUE not in server.output()


def test_header_and_query_secrets(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "kinds", net_app([f"http://up.test:{port}"], secrets=["KEY", "QKEY"]))
    cli_ok(server, "secret", "set", "KEY", "--app", "kinds", "--as", "header:X-Api-Key",
           input="header-secret-value\n")
    cli_ok(server, "secret", "set", "QKEY", "--app", "kinds", "--as", "query:key",
           input="query secret/value&x\n")
    out = fetch(server, "kinds", f"http://up.test:{port}/echo?a=1", secret="KEY",
                headers={"X-Api-Key": "the app's own"})
    assert upstream.record.requests[-1]["headers"]["x-api-key"] == "header-secret-value"
    assert "header-secret-value" not in json.dumps(out)
    out = fetch(server, "kinds", f"http://up.test:{port}/echo?a=1&key=mine", secret="QKEY")
    assert upstream.record.requests[-1]["query"] == "a=1&key=query+secret%2Fvalue%26x"
    assert out["url"] == f"http://up.test:{port}/echo?a=1&key=mine"
    assert "secret%2Fvalue" not in json.dumps(out) and "secret/value" not in json.dumps(out)
    assert all("key=" not in c["path"] for c in net_log(server, "kinds", wait_for=2))


def test_a_secret_goes_only_where_it_is_bound(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "bound", net_app([f"http://up.test:{port}", f"http://other.test:{port}"],
                                    secrets=["BOUND", "FREE"]))
    cli_ok(server, "secret", "set", "BOUND", "--app", "bound", "--as", "bearer", "--domain",
           "other.test", input="bound-secret-value\n")
    cli_ok(server, "secret", "set", "FREE", "--app", "bound", "--as", "bearer",
           input="free-secret-value\n")
    message = refused(server, "bound", f"http://up.test:{port}/echo", "net_denied",
                      secret="BOUND")
    assert "other.test" in message
    assert upstream.record.requests == []
    # a secret bound to no domain stays with the origin the call named: not sent on a
    # redirect to another host
    out = fetch(server, "bound", f"http://up.test:{port}/to?u=http://other.test:{port}/echo",
                secret="FREE")
    assert out["status"] == 200
    first, second = upstream.record.requests
    assert first["headers"]["authorization"] == "Bearer free-secret-value"
    assert "authorization" not in second["headers"]
    # and one bound to other.test follows a redirect there, and only there
    upstream.record.clear()
    refused(server, "bound", f"http://up.test:{port}/to?u=http://other.test:{port}/echo",
            "net_denied", secret="BOUND")


def test_a_missing_secret_says_how_to_set_it(server: FaztServer, upstream: Upstream) -> None:
    deploy(server, "unset", net_app([f"http://up.test:{upstream.http_port}"],
                                    secrets=["NEVER_SET"]))
    message = refused(server, "unset", f"http://up.test:{upstream.http_port}/echo",
                      "net_denied", secret="NEVER_SET")
    assert "fazt secret set NEVER_SET" in message


# -- the operator's rules -----------------------------------------------------------------------


def test_rules_intersect_with_the_manifest(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "ruled", net_app([f"http://up.test:{port}", f"http://other.test:{port}"]))
    assert fetch(server, "ruled", f"http://other.test:{port}/echo")["status"] == 200
    cli_ok(server, "net", "allow", f"http://up.test:{port}", "--app", "ruled")
    assert fetch(server, "ruled", f"http://up.test:{port}/echo")["status"] == 200
    message = refused(server, "ruled", f"http://other.test:{port}/echo", "net_denied")
    assert f"fazt net allow http://other.test:{port} --app ruled" in message
    # a rule names a scheme and port as a manifest entry does: https on 443 is not this
    cli_ok(server, "net", "allow", "other.test", "--app", "ruled")
    refused(server, "ruled", f"http://other.test:{port}/echo", "net_denied")
    # a rule cannot widen the manifest
    cli_ok(server, "net", "allow", f"http://tls.test:{port}", "--app", "ruled")
    refused(server, "ruled", f"http://tls.test:{port}/echo", "net_denied")
    for entry in (f"http://up.test:{port}", f"http://tls.test:{port}"):
        cli_ok(server, "net", "remove", entry, "--app", "ruled")
    # any spelling of an entry names the rule; it is shown in its shortest form
    removed = cli_ok(server, "net", "remove", "HTTPS://Other.test:443/", "--app", "ruled")
    assert "removed the rule for other.test (app ruled)" in removed
    assert fetch(server, "ruled", f"http://other.test:{port}/echo")["status"] == 200


def test_rate_limits_and_the_cache(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "limited", net_app([f"http://up.test:{port}"]))
    entry = f"http://up.test:{port}"
    cli_ok(server, "net", "allow", entry, "--app", "limited", "--rate", "0.001", "--burst",
           "3", "--cache-ttl", "60")
    url = f"http://up.test:{port}/echo"
    first, second = fetch(server, "limited", url), fetch(server, "limited", url)
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["text"] == second["text"]
    assert len(upstream.record.requests) == 1
    # neither a POST nor a request with credentials is cached; a cache hit took no token,
    # so the bucket (3) is empty after these two
    assert fetch(server, "limited", url, method="POST", body="x")["cached"] is False
    assert fetch(server, "limited", url, headers={"Authorization": "Bearer u1"})["cached"] \
        is False
    message = refused(server, "limited", url + "?third", "net_rate_limited")
    assert entry in message
    assert len(upstream.record.requests) == 3
    rules = admin(server, "GET", "/api/net/rules").json()
    assert (rules["cache"]["hits"][entry], rules["cache"]["misses"][entry]) == (1, 2)
    table = cli_ok(server, "net", "list")
    assert "up.test" in table and "limited" in table


def test_a_go_fazt_app_reaches_what_the_operator_allows(server: FaztServer,
                                                        upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "goapp", {"api/main.js": f"""
var r;
try {{
  r = fazt.net.fetch("http://up.test:{port}/echo", {{method: "POST", body: 42,
                     headers: {{"X-Go": "yes"}}, auth: request.query.auth || ""}});
  respond({{status: r.status, ok: r.ok, body: r.json()}});
}} catch (e) {{
  respond(500, {{error: e.code, message: e.message}});
}}
"""})
    r = call(server, "goapp", "GET", "/api/")
    assert r.status_code == 500 and r.json()["error"] == "net_denied", r.text
    cli_ok(server, "net", "allow", f"http://up.test:{port}", "--app", "goapp")
    r = call(server, "goapp", "GET", "/api/")
    assert r.status_code == 200, r.text
    assert r.json()["body"]["body"] == "42"
    assert r.json()["body"]["headers"]["x-go"] == "yes"
    cli_ok(server, "secret", "set", "GO_TOKEN", "--app", "goapp", "--as", "bearer",
           input="go-secret-value-1\n")
    r = call(server, "goapp", "GET", "/api/", params={"auth": "GO_TOKEN"})
    assert upstream.record.requests[-1]["headers"]["authorization"] == \
        "Bearer go-secret-value-1"


# -- the log ------------------------------------------------------------------------------------


def test_every_call_is_logged_without_query_strings(server: FaztServer,
                                                    upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "logged", net_app([f"http://up.test:{port}"]))
    fetch(server, "logged", f"http://up.test:{port}/echo?token=abc", method="POST", body="12345")
    refused(server, "logged", f"http://other.test:{port}/nope?x=1", "net_denied")
    refused(server, "logged", f"http://up.test:{port}/big?n=2000000", "net_too_large")
    calls = net_log(server, "logged", wait_for=3)
    assert [(c["method"], c["host"], c["path"], c["status"], c["error"], c["bytes_out"])
            for c in calls] == [
        ("POST", f"http://up.test:{port}", "/echo", 200, None, 5),
        ("GET", f"http://other.test:{port}", "/nope", None, "net_denied", 0),
        ("GET", f"http://up.test:{port}", "/big", None, "net_too_large", 0)]
    assert all(c["app"] == "logged" and c["request_id"] for c in calls)
    assert "token=abc" not in json.dumps(calls)
    printed = cli_ok(server, "net", "log", "--app", "logged")
    assert f"POST http://up.test:{port}/echo 200" in printed and "net_denied" in printed


# -- the admin API and CLI refuse bad input -----------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("POST", "/api/net/rules", {"domain": "*"}, 400, "bad_request"),
    ("POST", "/api/net/rules", {"domain": "*.com"}, 400, "bad_request"),
    ("POST", "/api/net/rules", {"domain": "x.test/path"}, 400, "bad_request"),
    ("POST", "/api/net/rules", {"domain": "ftp://x.test"}, 400, "bad_request"),
    ("POST", "/api/net/rules", {"domain": "x.test", "rate_per_s": -1}, 400, "bad_request"),
    ("POST", "/api/net/rules", {"domain": "x.test", "burst": 0}, 400, "bad_request"),
    ("POST", "/api/net/rules", {"domain": "x.test", "app": "missing"}, 404, "app_not_found"),
    ("POST", "/api/net/rules", {"domain": "x.test", "what": 1}, 400, "bad_request"),
    ("DELETE", "/api/net/rules/never.test", None, 404, "not_found"),
    ("PUT", "/api/net/secrets/lower", {"value": "v"}, 400, "bad_request"),
    ("PUT", "/api/net/secrets/A", {"value": "v", "as": "cookie"}, 400, "bad_request"),
    ("PUT", "/api/net/secrets/A", {"value": "v", "as": "header:Host"}, 400, "bad_request"),
    ("PUT", "/api/net/secrets/A", {"value": "a\nb"}, 400, "bad_request"),
    ("PUT", "/api/net/secrets/A", {"value": ""}, 400, "bad_request"),
    ("PUT", "/api/net/secrets/A", {"value": "x" * 9000}, 413, "payload_too_large"),
    ("PUT", "/api/net/secrets/A", {"value": "v", "app": "missing"}, 404, "app_not_found"),
    ("DELETE", "/api/net/secrets/NEVER", None, 404, "not_found"),
    ("GET", "/api/net/log?n=0", None, 400, "bad_request"),
    ("GET", "/api/net/log?wait=5", None, 400, "bad_request"),
])
def test_bad_admin_requests(server: FaztServer, method: str, path: str, body: Any,
                            status: int, code: str) -> None:
    r = admin(server, method, path, json=body) if body is not None else \
        admin(server, method, path)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    # nothing was half-written
    secrets = admin(server, "GET", "/api/net/secrets").json()["secrets"]
    assert all(s["name"] != "A" for s in secrets)
    rules = admin(server, "GET", "/api/net/rules").json()["rules"]
    assert all("x.test" not in r["domain"] for r in rules)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/net/rules"),
                                              ("POST", "/api/net/rules"),
                                              ("GET", "/api/net/secrets"),
                                              ("PUT", "/api/net/secrets/A"),
                                              ("GET", "/api/net/log")])
def test_the_net_api_needs_the_admin_token(server: FaztServer, method: str, path: str) -> None:
    with server.admin(token="") as client:
        r = client.request(method, path)
    assert r.status_code == 401, r.text


def test_secret_set_refuses_an_empty_value_and_a_bad_kind(server: FaztServer) -> None:
    out = server.cli("secret", "set", "EMPTY", "--as", "bearer", input="")
    assert out.returncode != 0 and "empty" in out.stderr
    out = server.cli("secret", "set", "KIND", "--as", "basic", input="value\n")
    assert out.returncode != 0 and "bearer, header:NAME or query:NAME" in out.stderr
    assert "KIND" not in cli_ok(server, "secret", "list")


def test_app_info_shows_the_net_request_and_the_rules(server: FaztServer,
                                                      upstream: Upstream) -> None:
    port = upstream.http_port
    deploy(server, "infoapp", net_app([f"http://up.test:{port}"], secrets=["A_KEY"],
                                      timeout_ms=500))
    shown = cli_ok(server, "app", "info", "infoapp")
    assert f"allow http://up.test:{port}; secrets A_KEY; timeout 500 ms" in shown
    assert "net rules" not in shown
    cli_ok(server, "net", "allow", "*.up.test", "--app", "infoapp")
    try:
        shown = cli_ok(server, "app", "info", "infoapp")
        assert "net rules (calls go only to hosts a rule matches): *.up.test" in shown
        granted = admin(server, "GET", "/api/apps/infoapp").json()["capabilities"]
        assert granted["granted"]["net"] == {"allow": [f"http://up.test:{port}"],
                                             "secrets": ["A_KEY"], "timeoutMs": 500}
        assert [r["domain"] for r in granted["net_rules"]] == ["*.up.test"]
    finally:
        cli_ok(server, "net", "remove", "*.up.test", "--app", "infoapp")


def test_net_log_follow_prints_calls_as_they_happen(server: FaztServer,
                                                    upstream: Upstream) -> None:
    import signal
    import subprocess
    import sys

    from tests.harness import clean_env

    port = upstream.http_port
    deploy(server, "followed", net_app([f"http://up.test:{port}"]))
    env = clean_env(FAZT_URL=server.url, FAZT_TOKEN=server.token)
    proc = subprocess.Popen([sys.executable, "-m", "fazt", "net", "log", "--app", "followed",
                             "-n", "1", "-f"], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    watchdog = threading.Timer(60, proc.kill)   # a reader never blocks the suite for long
    watchdog.start()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert "following the net calls of followed" in proc.stderr.readline()
        # a failed call is written at once; the follower's long poll wakes for it
        refused(server, "followed", f"http://up.test:{port}/big?n=2000000", "net_too_large")
        line = proc.stdout.readline()
        assert f"GET http://up.test:{port}/big net_too_large" in line, line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_a_secret_for_every_app_must_be_bound(server: FaztServer, upstream: Upstream) -> None:
    port = upstream.http_port
    out = server.cli("secret", "set", "SHARED", "--as", "bearer", input="shared-secret-value\n")
    assert out.returncode != 0 and "--domain" in out.stderr
    assert "SHARED" not in cli_ok(server, "secret", "list")
    cli_ok(server, "secret", "set", "SHARED", "--as", "bearer", "--domain",
           f"http://up.test:{port}", input="shared-secret-value\n")
    try:
        deploy(server, "sharer", net_app([f"http://up.test:{port}", f"http://other.test:{port}"],
                                         secrets=["SHARED"]))
        fetch(server, "sharer", f"http://up.test:{port}/echo", secret="SHARED")
        assert upstream.record.requests[-1]["headers"]["authorization"] == \
            "Bearer shared-secret-value"
        # bound to an entry: another host, or the same host on another scheme or port, is not it
        message = refused(server, "sharer", f"http://other.test:{port}/echo", "net_denied",
                          secret="SHARED")
        assert f"only sent to http://up.test:{port}" in message
        assert len(upstream.record.requests) == 1
    finally:
        cli_ok(server, "secret", "remove", "SHARED")
