"""A worker lives as long as its server, not as long as the thread that spawned it, and dies
with its server even while its JS spins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson

from fazt.sandbox._protocol import FrameReader, encode

REQUEST = b'{"method":"GET","path":"/api/"}'
SPIN = "module.exports = async () => { while (true) {} }"


def _spawn_worker(parent_pid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-I", "-m", "fazt.sandbox.worker", str(parent_pid),
                             "512"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")


def _receive(proc: subprocess.Popen[bytes], reader: FrameReader) -> dict[str, object]:
    assert proc.stdout is not None
    while True:
        data = os.read(proc.stdout.fileno(), 65536)
        assert data, f"worker exited with {proc.wait()}"
        frames = reader.feed(data)
        if frames:
            return frames[0][0]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def test_worker_outlives_the_thread_that_spawned_it() -> None:
    box: list[subprocess.Popen[bytes]] = []
    spawner = threading.Thread(target=lambda: box.append(_spawn_worker(os.getpid())))
    spawner.start()
    spawner.join()                      # the spawning thread is gone
    proc = box[0]
    try:
        reader = FrameReader()
        assert _receive(proc, reader)["t"] == "ready"
        assert proc.stdin is not None
        files = {"api/main.js": "module.exports = async () => 'alive'"}
        proc.stdin.write(encode({"t": "load", "main": "api/main.js", "memory_mb": 256},
                                orjson.dumps({"files": files})))
        proc.stdin.flush()
        assert _receive(proc, reader)["t"] == "loaded"
        proc.stdin.write(encode({"t": "req", "id": 1, "end_at": time.monotonic() + 5,
                                 "budget_at": time.monotonic() + 5, "slice_ms": 5000},
                                REQUEST))
        proc.stdin.flush()
        done = _receive(proc, reader)
        assert done["t"] == "done" and done["ok"] is True
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


PARENT = textwrap.dedent("""
    import os, subprocess, sys, time, orjson
    from fazt.sandbox._protocol import FrameReader, encode
    proc = subprocess.Popen([sys.executable, "-I", "-m", "fazt.sandbox.worker", str(os.getpid()),
                             "512"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/")
    reader = FrameReader()
    def receive():
        while True:
            frames = reader.feed(os.read(proc.stdout.fileno(), 65536))
            if frames:
                return frames[0][0]
    receive()
    proc.stdin.write(encode({"t": "load", "main": "api/main.js", "memory_mb": 256},
                            orjson.dumps({"files": {"api/main.js": sys.argv[1]}})))
    proc.stdin.flush()
    receive()
    proc.stdin.write(encode({"t": "req", "id": 1, "end_at": time.monotonic() + 60,
                             "budget_at": time.monotonic() + 60, "slice_ms": 60000},
                            b'{"method":"GET","path":"/api/"}'))
    proc.stdin.flush()
    print(proc.pid, flush=True)
    time.sleep(120)
""")


def test_a_spinning_worker_exits_soon_after_its_server_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, SPIN], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        assert not _gone(worker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        # The pipe's other end is still held by... nobody: but the worker is inside a 60 s
        # slice of JS, so only the watchdog's parent check can end it (about every second).
        assert _wait_gone(worker_pid, 5.0), "the orphaned worker is still running"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
