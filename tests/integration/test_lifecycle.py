"""Shutdown, atomic swaps and online backups against a real server."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx
import pytest
import sqlcipher3

from tests.harness import FaztServer, start_server

pytestmark = pytest.mark.integration


def test_sigterm_drains_in_flight_requests_and_exits_zero(tmp_path) -> None:
    srv = start_server(tmp_path / "data")
    big = os.urandom(8 * 2**20)
    assert srv.deploy("big", {"blob.bin": big}).status_code == 201
    with httpx.Client(base_url=srv.url, headers={"host": "big.localhost"}, trust_env=False,
                      timeout=30) as client, client.stream("GET", "/blob.bin") as response:
        chunks = response.iter_bytes(64 * 1024)
        received = bytearray(next(chunks))
        srv.proc.send_signal(signal.SIGTERM)  # the download is in flight
        assert _wait_until_refused(srv.port), "new connections are refused while draining"
        for chunk in chunks:
            received.extend(chunk)
    assert bytes(received) == big, "the in-flight request completed"
    assert srv.proc.wait(30) == 0
    assert "stopped cleanly" in srv.output()
    with pytest.raises(ProcessLookupError):
        os.killpg(srv.proc.pid, 0)  # no process of its group is left


def _wait_until_refused(port: int, timeout_s: float = 10.0) -> bool:
    """Connect repeatedly until the listener is gone (polling for the event, bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:  # refused, or reset/timed out in the closing listener's queue
            return True
    return False


def test_sigint_exits_zero(tmp_path) -> None:
    srv = start_server(tmp_path / "data")
    assert srv.stop(signal.SIGINT) == 0


def test_requests_never_see_a_half_deployed_app(server: FaztServer) -> None:
    versions = {f"v{i}": {"index.html": f"<p>version {i}</p>" * 50,
                          **{f"page{j}.html": f"v{i} page {j}" for j in range(20)}}
                for i in range(8)}
    assert server.deploy("swap", versions["v0"]).status_code == 201
    bodies = {v["index.html"] for v in versions.values()}
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def poll() -> None:
        with server.app("swap") as client:
            while not done.is_set():
                r = client.get("/")
                seen.append((r.status_code, r.text))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for name, files in list(versions.items())[1:]:
            assert server.deploy("swap", files).status_code == 201, name
    finally:
        done.set()
        poller.join()
    assert seen, "the poller ran"
    assert all(status == 200 for status, _ in seen)
    assert all(body in bodies for _, body in seen)


def test_backup_while_serving(server: FaztServer, tmp_path) -> None:
    assert server.deploy("backed", {"index.html": "in the backup"}).status_code == 201
    dest = tmp_path / "copy.db"
    out = server.cli("backup", str(dest), "--data-dir", str(server.data_dir))
    assert out.returncode == 0, out.stderr
    key = (server.data_dir / "db.key").read_text().strip()
    conn = sqlcipher3.connect(str(dest))
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    names = {r[0] for r in conn.execute("SELECT name FROM apps")}
    conn.close()
    assert "backed" in names
    assert b"in the backup" not in dest.read_bytes()

    again = server.cli("backup", str(dest), "--data-dir", str(server.data_dir))
    assert again.returncode == 1, "an existing file is never overwritten"


def _stalled_download(srv: FaztServer) -> socket.socket:
    """A client that asks for a large file, reads a little, then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(b"GET /blob.bin HTTP/1.1\r\nHost: big.localhost\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock


@pytest.mark.parametrize("second_signal", [False, True])
def test_a_client_that_stops_reading_cannot_hold_shutdown(tmp_path, second_signal: bool) -> None:
    grace = "60" if second_signal else "1"
    srv = start_server(tmp_path / "data", env={"FAZT_SHUTDOWN_GRACE_S": grace,
                                               "FAZT_HTTP_SEND_TIMEOUT_S": "60"})
    assert srv.deploy("big", {"blob.bin": os.urandom(24 * 2**20)}).status_code == 201
    sock = _stalled_download(srv)
    try:
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        if second_signal:
            assert _wait_until_refused(srv.port), "draining has begun"
            srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
        assert time.monotonic() - started < 15, "shutdown stayed bounded"
    finally:
        sock.close()
        srv.stop(signal.SIGKILL)
