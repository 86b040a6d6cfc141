"""A local upstream for the net capability's black-box tests: plain HTTP and HTTPS (a trustme
CA) on 127.0.0.1, in threads of the test process, recording what it was sent.

Routes: ``/echo`` answers the request as JSON (method, path, query, headers, body);
``/to?u=URL[&code=302]`` redirects; ``/chain/N`` redirects to ``/chain/N+1`` forever;
``/bomb`` is a small gzip body of 50 MB of zeros; ``/big?n=BYTES``; ``/trickle`` sends its
headers, then a byte every 100 ms for a minute; ``/hold`` answers once ``release()`` is
called (or after 20 s), counting how many are held at once.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

BOMB = gzip.compress(b"\0" * 50_000_000)


@dataclass
class Record:
    requests: list[dict[str, Any]] = field(default_factory=list)
    holding: int = 0
    most_held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.holding = self.most_held = 0
            self.released.clear()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    record: Record

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        seen = {"method": self.command, "path": url.path, "query": url.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "sha256": hashlib.sha256(body).hexdigest()}
        with self.record.lock:
            self.record.requests.append(seen)
        if url.path == "/echo":
            self._reply(200, json.dumps(seen).encode(), {"content-type": "application/json",
                                                         "x-echo": self.headers.get(
                                                             "authorization", "")})
        elif url.path == "/to":
            self._reply(int(query.get("code", "302")), b"", {"location": query["u"]})
        elif url.path.startswith("/chain/"):
            n = int(url.path.rsplit("/", 1)[1])
            self._reply(302, b"", {"location": f"/chain/{n + 1}"})
        elif url.path == "/bomb":
            self._reply(200, BOMB, {"content-encoding": "gzip"})
        elif url.path == "/big":
            self._reply(200, b"x" * int(query["n"]))
        elif url.path == "/trickle":
            self.send_response(200)
            self.send_header("content-length", "600")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)     # the upstream is slow on purpose
            except OSError:
                return
        elif url.path == "/hold":
            with self.record.lock:
                self.record.holding += 1
                self.record.most_held = max(self.record.most_held, self.record.holding)
            self.record.released.wait(20)
            with self.record.lock:
                self.record.holding -= 1
            self._reply(200, b"held")
        else:
            self._reply(404, b"no such route")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


@dataclass
class Upstream:
    http_port: int
    https_port: int
    record: Record
    ca_pem: bytes
    _servers: list[http.server.ThreadingHTTPServer]

    def release(self) -> None:
        self.record.released.set()

    def close(self) -> None:
        self.record.released.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()


def start_upstream(tls_names: list[str]) -> Upstream:
    record = Record()
    handler = type("Handler", (_Handler,), {"record": record})
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    secure = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*tls_names).configure_cert(context)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    for server in (plain, secure):
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return Upstream(http_port=plain.server_address[1], https_port=secure.server_address[1],
                    record=record, ca_pem=ca.cert_pem.bytes(), _servers=[plain, secure])
