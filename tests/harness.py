"""Start and drive a real `fazt run` process, the way a user does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.archives import make_archive

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 30.0
READY_LINE = "press Ctrl-C to stop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FAZT_") and k not in ("COLUMNS", "LINES")}
    env.update(extra)
    return env


@dataclass
class FaztServer:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, token: str | None = None) -> httpx.Client:
        token = self.token if token is None else token
        headers = {"host": "localhost", "authorization": f"Bearer {token}"} if token else \
            {"host": "localhost"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def app(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"host": f"{name}.localhost"},
                            timeout=30, trust_env=False)

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = clean_env(FAZT_URL=self.url, FAZT_TOKEN=self.token, **self.env)
        return subprocess.run([sys.executable, "-m", "fazt", *args], env=env, text=True,
                              capture_output=True, timeout=120, input=input,
                              cwd=self.data_dir.parent)

    def deploy(self, name: str, files: dict[str, bytes | str], *,
               kind: str = "tar") -> httpx.Response:
        body = make_archive(files, kind=kind)
        ctype = "application/zip" if kind == "zip" else "application/gzip"
        with self.admin() as client:
            return client.post(f"/api/apps/{name}/deploy", content=body,
                               headers={"content-type": ctype})

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(data_dir: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 wait: bool = True) -> FaztServer:
    port = free_port()
    log_path = data_dir.parent / f"fazt-{port}.log"
    extra = env or {}
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "fazt", "run", "--port", str(port), "--data-dir",
             str(data_dir), *args],
            stdout=log, stderr=subprocess.STDOUT, env=clean_env(COLUMNS="200", **extra),
            cwd=data_dir.parent, start_new_session=True)
    server = FaztServer(data_dir=data_dir, port=port, proc=proc, log_path=log_path, env=extra)
    if wait:
        wait_ready(server)
    return server


def wait_ready(server: FaztServer) -> None:
    """Poll until fazt answers and has printed its banner, dies, or the start-up timeout passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"fazt exited with {server.proc.returncode}:\n"
                                   f"{server.output()}")
            try:
                r = client.get(f"{server.url}/api/health", headers={"host": "localhost"})
                # ready = answering, and the start-up banner (token, URLs) has been printed
                if r.status_code == 200 and READY_LINE in server.output():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling for readiness, not waiting for things to settle
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"fazt did not become ready:\n{server.output()}")


def deploy(server: FaztServer, name: str, files: dict[str, bytes | str]) -> None:
    """Deploy through the admin API; the deploy must succeed."""
    r = server.deploy(name, files)
    assert r.status_code == 201, r.text


def call(server: FaztServer, app: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to an app's host."""
    with server.app(app) as client:
        return client.request(method, path, **kwargs)
