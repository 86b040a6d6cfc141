"""The egress client against real servers on 127.0.0.1: plain HTTP and HTTPS (trustme CA).

Names resolve through a StaticResolver; the guard's test seam permits exactly the names the
test servers answer for, at 127.0.0.1, so everything else is judged as in production.
"""

from __future__ import annotations

import gzip
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio
import trustme
from hypercorn.config import Config
from hypercorn.trio import serve

from fazt.egress import Egress, EgressSettings, StaticResolver, Target, parse_url
from fazt.errors import NetBadUrl, NetBlockedAddress, NetDenied, NetError, NetTimeout, NetTooLarge

LOCAL_NAMES = {"good.test", "other.test"}

# A response cut short (over the limit) is closed while httpx's and httpcore's stream generators
# are mid-iteration; closing the outer one does not close the ones it iterates (no PEP 533), so
# trio finalizes them at garbage collection and warns. Only those generators are ignored.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object (AsyncHTTP11Connection"
    "._receive_response_body|AsyncResponseStream.__aiter__|BoundAsyncStream.__aiter__"
    "|HTTP11ConnectionByteStream.__aiter__|PoolByteStream.__aiter__)"
    ":pytest.PytestUnraisableExceptionWarning")


@dataclass
class Seen:
    requests: list[dict[str, Any]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)


def make_app(seen: Seen, ports: dict[str, int]) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].split(".")[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path = scope["path"]
        seen.requests.append({"method": scope["method"], "path": path, "headers": headers,
                              "body": body, "query": scope["query_string"].decode()})
        status, extra, payload = 200, [], b"hello from " + path.encode()
        if path.startswith("/to/"):     # /to/<url> redirects there (303 for /to303/)
            status, extra = 302, [(b"location", path[4:].replace("_", "/").encode())]
        elif path == "/chain":
            status, extra = 302, [(b"location", b"/chain")]
        elif path == "/303":
            status, extra = 303, [(b"location", b"/landed")]
        elif path == "/big":
            payload = b"x" * 200_000
            extra = [(b"content-length", b"200000")]
        elif path == "/bomb":
            payload = gzip.compress(b"\0" * 50_000_000)
            extra = [(b"content-encoding", b"gzip")]
        elif path == "/gz":
            payload = gzip.compress(b"small and fine")
            extra = [(b"content-encoding", b"gzip")]
        elif path in ("/gz-trailer", "/gz-glued"):
            # a small gzip body, then data past its end: glued to it, or 100 more chunks
            start = gzip.compress(b"small") + (b"\0" * 1000 if path == "/gz-glued" else b"")
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-encoding", b"gzip")]})
            await send({"type": "http.response.body", "body": start, "more_body": True})
            for _ in range(100 if path == "/gz-trailer" else 0):
                await send({"type": "http.response.body", "body": b"\0" * 65536,
                            "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        elif path == "/slow":
            await trio.sleep(30)
        elif path == "/cross":
            status = 302
            extra = [(b"location", f"http://other.test:{ports['http']}/landed".encode())]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), *extra]})
        await send({"type": "http.response.body", "body": payload})

    return app


@dataclass
class Servers:
    egress: Egress
    seen: Seen
    http_port: int
    https_port: int

    def target(self, url: str) -> Target:
        return parse_url(url)


def allow_local(target: Target) -> tuple[httpx.URL, list[tuple[str, str]]]:
    """A policy: only the local test names may be fetched."""
    if target.host not in LOCAL_NAMES:
        raise NetDenied(f"{target.host} is not allowed")
    return target.url, []


@pytest.fixture
async def servers(nursery: trio.Nursery) -> AsyncIterator[Servers]:
    ca = trustme.CA()
    cert = ca.issue_cert("good.test", "other.test")
    seen = Seen()
    ports: dict[str, int] = {}
    app = make_app(seen, ports)

    class TlsConfig(Config):
        def create_ssl_context(self) -> ssl.SSLContext | None:
            context = super().create_ssl_context()
            assert context is not None
            context.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)
            return context

    plain = Config()
    plain.bind = ["127.0.0.1:0"]
    tls = TlsConfig()
    tls.bind = ["127.0.0.1:0"]
    with cert.private_key_and_cert_chain_pem.tempfile() as pem:
        tls.certfile = pem
        tls.keyfile = pem
        binds_http = await nursery.start(serve, app, plain)
        binds_https = await nursery.start(serve, app, tls)
    ports["http"] = int(binds_http[0].rsplit(":", 1)[1])
    ports["https"] = int(binds_https[0].rsplit(":", 1)[1])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    resolver = StaticResolver({"good.test": ["127.0.0.1"], "other.test": ["127.0.0.1"],
                               "evil.test": ["93.184.216.34", "127.0.0.1"],
                               "meta.test": ["169.254.169.254"], "v6.test": ["::ffff:10.0.0.1"]})
    egress = Egress(resolver=resolver, ssl_context=client_context,
                    settings=EgressSettings(max_response_bytes=100_000, max_request_bytes=1000),
                    permit=lambda host, a: host in LOCAL_NAMES and str(a) == "127.0.0.1")
    try:
        yield Servers(egress=egress, seen=seen, http_port=ports["http"],
                      https_port=ports["https"])
    finally:
        await egress.aclose()


async def fetch(s: Servers, url: str, *, method: str = "GET", body: bytes = b"",
                headers: list[tuple[str, str]] | None = None, timeout_s: float = 10,
                prepare: Any = allow_local) -> Any:
    return await s.egress.fetch(method, parse_url(url), headers=headers or [], body=body,
                                deadline=trio.current_time() + timeout_s, prepare=prepare)


async def test_https_keeps_the_host_for_sni_and_the_host_header(servers: Servers) -> None:
    response = await fetch(servers, f"https://good.test:{servers.https_port}/hi?x=1")
    assert (response.status, response.body) == (200, b"hello from /hi")
    assert servers.seen.sni == ["good.test"]
    request = servers.seen.requests[-1]
    assert request["headers"]["host"] == f"good.test:{servers.https_port}"
    assert request["query"] == "x=1"
    assert servers.egress.backend.connects == 1


@pytest.mark.parametrize("host", ["evil.test", "meta.test", "v6.test", "127.0.0.1", "[::1]",
                                  "[::ffff:127.0.0.1]", "0.0.0.0", "localhost"])
async def test_non_public_addresses_are_refused_before_any_connection(
        servers: Servers, host: str) -> None:
    with pytest.raises((NetBlockedAddress, NetError)) as caught:
        await fetch(servers, f"http://{host}:{servers.http_port}/", prepare=lambda t: (t.url, []))
    assert servers.egress.backend.connects == 0
    assert servers.seen.requests == []
    if host != "localhost":         # not in the static table: does not resolve at all
        assert isinstance(caught.value, NetBlockedAddress)


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:{port}/", "http://[::ffff:10.0.0.1]/", "http://meta.test/",
    "file:///etc/passwd", "gopher://good.test/", "http://2130706433/"])
async def test_every_redirect_hop_is_checked_again(servers: Servers, location: str) -> None:
    location = location.format(port=servers.http_port).replace("/", "_")
    with pytest.raises((NetBlockedAddress, NetBadUrl, NetDenied)):
        await fetch(servers, f"http://good.test:{servers.http_port}/to/{location}",
                    prepare=lambda t: (t.url, []))
    assert len(servers.seen.requests) == 1      # only the first hop reached a server


async def test_a_hop_the_policy_refuses_is_not_made(servers: Servers) -> None:
    hops: list[str] = []

    def policy(target: Target) -> tuple[httpx.URL, list[tuple[str, str]]]:
        hops.append(target.host)
        return allow_local(target)

    with pytest.raises(NetDenied):
        await fetch(servers, f"http://good.test:{servers.http_port}/to/http:__elsewhere.test_",
                    prepare=policy)
    assert hops == ["good.test", "elsewhere.test"]


async def test_redirects_stop_after_the_limit(servers: Servers) -> None:
    with pytest.raises(NetError, match="more than 5 redirects"):
        await fetch(servers, f"http://good.test:{servers.http_port}/chain")
    assert len(servers.seen.requests) == 6


async def test_303_turns_a_post_into_a_get_without_the_body(servers: Servers) -> None:
    response = await fetch(servers, f"http://good.test:{servers.http_port}/303",
                           method="POST", body=b"data")
    assert response.body == b"hello from /landed" and response.redirects == 1
    assert [(r["method"], r["body"]) for r in servers.seen.requests] == \
        [("POST", b"data"), ("GET", b"")]


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
        servers: Servers) -> None:
    secret_hops: list[str] = []

    def with_secret(target: Target) -> tuple[httpx.URL, list[tuple[str, str]]]:
        allow_local(target)
        if target.host == "good.test":      # a secret bound to good.test
            secret_hops.append(target.host)
            return target.url, [("x-api-key", "s3cret")]
        return target.url, []

    response = await fetch(servers, f"http://good.test:{servers.http_port}/cross",
                           headers=[("Authorization", "Bearer app"), ("X-Mine", "1")],
                           prepare=with_secret)
    assert response.body == b"hello from /landed"
    first, second = (r["headers"] for r in servers.seen.requests)
    assert first["x-api-key"] == "s3cret" and first["authorization"] == "Bearer app"
    assert "x-api-key" not in second and "authorization" not in second
    assert second["x-mine"] == "1" and second["host"].startswith("other.test")
    assert secret_hops == ["good.test"]


async def test_app_headers_cannot_replace_the_framing(servers: Servers) -> None:
    await fetch(servers, f"http://good.test:{servers.http_port}/h", method="POST", body=b"abc",
                headers=[("Host", "evil.test"), ("Content-Length", "999"),
                         ("Transfer-Encoding", "chunked"), ("Connection", "close")])
    headers = servers.seen.requests[-1]["headers"]
    assert headers["host"] == f"good.test:{servers.http_port}"
    assert headers["content-length"] == "3" and "transfer-encoding" not in headers
    assert servers.seen.requests[-1]["body"] == b"abc"


async def test_body_limits_both_ways(servers: Servers) -> None:
    with pytest.raises(NetTooLarge, match="request body"):
        await fetch(servers, f"http://good.test:{servers.http_port}/", method="POST",
                    body=b"x" * 1001)
    assert servers.seen.requests == []
    with pytest.raises(NetTooLarge, match="100000-byte limit"):
        await fetch(servers, f"http://good.test:{servers.http_port}/big")
    head = await fetch(servers, f"http://good.test:{servers.http_port}/big", method="HEAD")
    assert (head.status, head.body) == (200, b"")       # the length it announces is not read


async def test_a_gzip_bomb_is_cut_at_the_limit_once_decompressed(servers: Servers) -> None:
    with pytest.raises(NetTooLarge, match="once decompressed"):
        await fetch(servers, f"http://good.test:{servers.http_port}/bomb")
    small = await fetch(servers, f"http://good.test:{servers.http_port}/gz")
    assert small.body == b"small and fine"
    assert "content-encoding" not in dict(small.headers)


@pytest.mark.parametrize("path", ["/gz-trailer", "/gz-glued"])
async def test_data_after_the_compressed_body_is_refused(servers: Servers, path: str) -> None:
    """zlib keeps what follows a stream's end in ``unused_data``, uncounted and copied whole
    at each chunk: an upstream could send without end past a tiny gzip body."""
    with pytest.raises(NetError, match="data after the end of its compressed body"):
        await fetch(servers, f"http://good.test:{servers.http_port}{path}")


async def test_the_deadline_stops_a_slow_server_and_the_client_stays_usable(
        servers: Servers) -> None:
    started = trio.current_time()
    with pytest.raises(NetTimeout):
        await fetch(servers, f"http://good.test:{servers.http_port}/slow", timeout_s=0.3)
    assert trio.current_time() - started < 5
    response = await fetch(servers, f"http://good.test:{servers.http_port}/after")
    assert response.body == b"hello from /after"


async def test_environment_proxies_are_ignored(servers: Servers,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    response = await fetch(servers, f"http://good.test:{servers.http_port}/direct")
    assert response.body == b"hello from /direct"
