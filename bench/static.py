"""Static-file throughput: fazt's static path against a bare ASGI app on the same server stack.

Run it from the repo root (needs root or sudo only if wrk must be installed)::

    .venv/bin/python bench/static.py                  # 2 rounds x 2 scenarios, 10 s each
    .venv/bin/python bench/static.py --quick          # 3 s runs, for a smoke test
    .venv/bin/python bench/static.py --json /tmp/static.json

Method (the one of stack-findings §6, so the numbers compare):

* Two servers serve the same bytes, both ``hypercorn -k trio`` with one worker, no access log,
  no ``Server`` header and a 5 s keep-alive, on 127.0.0.1 and a free port:

  - **baseline**: ``bench/_baseline_app.py``, a bare ASGI app with every file and its complete
    header list (content-type, content-length, ETag, cache-control) in memory; a request is a
    dict look-up and two ``send`` calls. It is the ceiling for this stack.
  - **fazt**: ``fazt run`` on a fresh temporary data dir, the files deployed as app ``bench``
    through the admin API (a tar.gz to ``POST /api/apps/bench/deploy``), requested with
    ``Host: bench.localhost``. Both the site index and the file bytes are in memory after the
    warm-up, so this measures fazt's per-request code, not SQLite.

* Scenarios: a 4 KiB HTML page (``/index.html``) and a 64 KiB content-hashed JS asset
  (``/assets/app.3f9a2b1c.js``). The bytes are checked once over HTTP before any load.
* Pinning: each server with ``taskset -c 0``, wrk with ``taskset -c 1`` (unpinned, and said so,
  when taskset or a second CPU is missing). The server's CPU use is read from /proc over its
  whole process group, so a row shows whether it really had a full core; "cpu0 other" is the
  rest of CPU 0's busy time (other processes stealing from the server: the run is noisy).
  "CPU us/req" (server CPU time / requests) moves much less than req/s when the machine is
  shared, so its baseline/fazt ratio is printed too: the req/s ratio both would get with a
  full core each.
* Each measured run: ``wrk -t1 -c50 -d2s`` warm-up, then ``wrk -t1 -c50 -d10s --latency``.
  Baseline and fazt alternate (A B A B ...) so drift hits both. Any socket error or non-2xx/3xx
  response fails the benchmark.
* Reported: every run, the mean per server and scenario, and fazt/baseline for req/s (target
  >= 0.85) and for p99 latency (lower is better, so above 1 means fazt is slower).

wrk is installed with apt-get when it is missing (``apt-get update`` only if the install fails
without it). Every server started here is stopped on exit, Ctrl-C or error: SIGTERM to its
process group, SIGKILL after a bounded wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASELINE_APP = Path(__file__).resolve().parent / "_baseline_app.py"
HOST = "127.0.0.1"
APP = "bench"
APP_HOST = f"{APP}.localhost"
SERVER_CPU = 0
WRK_CPU = 1
TARGET_RPS_RATIO = 0.85
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SHUTDOWN_GRACE_S = 2

# Wide enough for the table when the output is piped to a file.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    url_path: str  # also the file's path inside the deploy, with a leading slash
    size_bytes: int


SCENARIOS = (
    Scenario("html-4k", "/index.html", 4 * 1024),
    Scenario("js-64k", "/assets/app.3f9a2b1c.js", 64 * 1024),
)


@dataclasses.dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: dict[str, int]
    non_2xx_3xx: int


@dataclasses.dataclass(frozen=True)
class Run:
    scenario: str
    server: str
    round: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_cores: float  # CPU time of the server's process group / wall time
    server_cpu_us_per_request: float  # the same CPU time / requests: robust to stolen CPU
    cpu0_other_cores: float  # the rest of CPU 0's busy time during the run


# --- tools ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Path of wrk; installs the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    # Wait for a concurrent apt/dpkg run instead of failing on its lock.
    install = [*sudo, "apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "wrk"]
    console.print(f"wrk not found: running {' '.join(install)}")
    if subprocess.run(install, check=False).returncode != 0:
        update = [*sudo, "apt-get", "-o", "DPkg::Lock::Timeout=300", "update"]
        console.print(f"install failed: running {' '.join(update)}, then the install again")
        subprocess.run(update, check=True)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if not found:
        raise click.ClickException("wrk is still not on PATH after apt-get install")
    return found


def pinning_available() -> tuple[bool, str]:
    if shutil.which("taskset") is None:
        return False, "taskset not found (util-linux): running UNPINNED"
    allowed = os.sched_getaffinity(0)
    if not {SERVER_CPU, WRK_CPU} <= allowed:
        return False, f"CPUs {SERVER_CPU} and {WRK_CPU} not both available: running UNPINNED"
    return True, f"server pinned to CPU {SERVER_CPU}, wrk to CPU {WRK_CPU}"


def pinned(cmd: Sequence[str], cpu: int, *, pin: bool) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if pin else list(cmd)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- content -------------------------------------------------------------------------------


def make_files(root: Path) -> dict[str, bytes]:
    """Deterministic HTML and JS of exactly the scenario sizes, written under ``root``."""
    rng = random.Random(20240607)  # filler text, not security
    words = ["static", "fazt", "trio", "cache", "deploy", "asset", "bytes", "serve", "index",
             "request", "latency", "header", "sqlite", "hello", "world", "bundle"]

    def sentence() -> str:
        return " ".join(rng.choice(words) for _ in range(12)).capitalize() + "."

    html = ['<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
            "<title>bench</title>", '<script src="/assets/app.3f9a2b1c.js" defer></script>',
            "</head><body>"]
    js = ['"use strict";']
    for n in range(2000):
        html.append(f"<p id=p{n}>{sentence()}</p>")
        js.append(f"export function f{n}(x) {{ return x * {n} + {rng.randrange(10**6)}; }}"
                  f" // {sentence()}")
    bodies = {}
    for scenario, parts, close, pad in ((SCENARIOS[0], html, "</body></html>\n", "<!--{}-->"),
                                        (SCENARIOS[1], js, "\n", "/*{}*/")):
        text = "\n".join(parts)
        room = scenario.size_bytes - len(close) - len(pad.format(""))
        text = text[: text.rfind("\n", 0, room)]  # whole lines only
        text += pad.format("x" * (room - len(text))) + close
        data = text.encode("ascii")
        assert len(data) == scenario.size_bytes, (scenario, len(data))
        bodies[scenario.url_path] = data
        target = root / scenario.url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return bodies


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for url_path, data in sorted(files.items()):
            info = tarfile.TarInfo(url_path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --- servers -------------------------------------------------------------------------------


class Server:
    """A server in its own process group, stopped (bounded in time) by :meth:`stop`."""

    def __init__(self, name: str, cmd: list[str], *, port: int, log_path: Path,
                 env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        console.print(f"[dim]$ {' '.join(cmd)}[/]")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd, start_new_session=True)
        self.pgid = self.proc.pid

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def wait_ready(self, *, host_header: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise click.ClickException(f"{self.name} exited with {self.proc.returncode}:\n"
                                           + self.log_tail())
            try:
                http("GET", self.url("/"), headers={"Host": host_header}, timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise click.ClickException(f"{self.name} not ready after {START_TIMEOUT_S} s:\n"
                                   + self.log_tail())

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time of every live process in the server's process group."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rfind(")") + 2:].split()
            # fields[0] is field 3 (state): pgrp is field 5, utime/stime are fields 14/15.
            if int(fields[2]) == self.pgid:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{self.name} ignored SIGTERM: SIGKILL[/]")
        # Also reap anything left in the group (hypercorn's worker process).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def running(server_factory: Any) -> Iterator[Server]:
    server: Server = server_factory()
    try:
        yield server
    finally:
        server.stop()


def http(method: str, url: str, *, headers: dict[str, str], body: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def start_baseline(workdir: Path, static_dir: Path, *, pin: bool) -> Server:
    port = free_port()
    config = workdir / "baseline-hypercorn.toml"
    config.write_text(f'bind = ["{HOST}:{port}"]\nworker_class = "trio"\nworkers = 1\n'
                      f"include_server_header = false\nkeep_alive_timeout = 5\n"
                      f"graceful_timeout = {SHUTDOWN_GRACE_S}\n")
    env = {**os.environ, "FAZT_BENCH_STATIC_DIR": str(static_dir)}
    cmd = pinned([str(BIN / "hypercorn"), "-c", str(config), f"{BASELINE_APP}:app"],
                 SERVER_CPU, pin=pin)
    return Server("baseline", cmd, port=port, log_path=workdir / "baseline.log", env=env,
                  cwd=workdir)


def start_fazt(workdir: Path, *, pin: bool) -> Server:
    port = free_port()
    data_dir = workdir / "fazt-data"
    env = {**os.environ, "FAZT_LOG_LEVEL": "warning",
           "FAZT_SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S)}
    env.pop("FAZT_HOME", None)
    env.pop("FAZT_DB_KEY", None)
    cmd = pinned([str(BIN / "fazt"), "run", "--host", HOST, "--port", str(port),
                  "--data-dir", str(data_dir)], SERVER_CPU, pin=pin)
    return Server("fazt", cmd, port=port, log_path=workdir / "fazt.log", env=env, cwd=workdir)


def deploy(server: Server, data_dir: Path, archive: bytes) -> None:
    token = (data_dir / "admin.token").read_text().strip()
    status, _, body = http("POST", server.url(f"/api/apps/{APP}/deploy"), body=archive,
                           headers={"Host": "localhost", "Authorization": f"Bearer {token}",
                                    "Content-Type": "application/gzip"})
    if status not in (200, 201):
        raise click.ClickException(f"deploy failed: HTTP {status}: {body[:500]!r}")
    console.print(f"deployed app {APP!r}: {json.loads(body)['deploy']}")


def check_bytes(server: Server, bodies: dict[str, bytes]) -> None:
    """Both servers must answer 200 with exactly the file, before any load is applied."""
    for url_path, expected in bodies.items():
        status, headers, body = http("GET", server.url(url_path), headers={"Host": APP_HOST})
        if status != 200 or body != expected:
            raise click.ClickException(f"{server.name} {url_path}: HTTP {status}, "
                                       f"{len(body)} bytes (expected 200, {len(expected)})")
        lower = {k.lower(): v for k, v in headers.items()}
        missing = {"content-type", "content-length", "etag", "cache-control"} - set(lower)
        if missing:
            raise click.ClickException(f"{server.name} {url_path}: no {sorted(missing)}")
        console.print(f"[dim]{server.name} {url_path}: 200, {len(body)} bytes, "
                      f"etag {lower['etag']}, cache-control {lower['cache-control']}[/]")


# --- wrk -----------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise click.ClickException(f"wrk output has no {pattern!r}:\n{output}")
        return match

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests=int(find(r"^\s*(\d+) requests in")[1]),
        requests_per_s=float(find(r"^Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=_latency_ms(find(r"^\s+50%\s+(\S+)")[1]),
        p99_ms=_latency_ms(find(r"^\s+99%\s+(\S+)")[1]),
        socket_errors=dict(zip(("connect", "read", "write", "timeout"),
                               (int(g) for g in errors.groups()), strict=True)) if errors else {},
        non_2xx_3xx=int(non_2xx[1]) if non_2xx else 0,
    )


def wrk(wrk_bin: str, server: Server, scenario: Scenario, *, duration_s: int,
        connections: int, pin: bool) -> str:
    cmd = pinned([wrk_bin, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency",
                  "-H", f"Host: {APP_HOST}", server.url(scenario.url_path)], WRK_CPU, pin=pin)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30,
                          check=False)
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                                   f"{done.stdout}{done.stderr}")
    return done.stdout


def cpu0_busy_seconds() -> float:
    """Busy time of CPU 0 (everything but idle and iowait), from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{SERVER_CPU} "):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values[:8]) - values[3] - values[4]) / tick
    return 0.0


def measure(wrk_bin: str, server: Server, scenario: Scenario, *, round_no: int,
            duration_s: int, warmup_s: int, connections: int, pin: bool) -> Run:
    if warmup_s > 0:
        wrk(wrk_bin, server, scenario, duration_s=warmup_s, connections=connections, pin=pin)
    cpu_before, cpu0_before, wall_before = (server.cpu_seconds(), cpu0_busy_seconds(),
                                            time.monotonic())
    output = wrk(wrk_bin, server, scenario, duration_s=duration_s, connections=connections,
                 pin=pin)
    wall = time.monotonic() - wall_before
    server_cpu_s = server.cpu_seconds() - cpu_before
    server_cores = server_cpu_s / wall
    cpu0_other = max(0.0, (cpu0_busy_seconds() - cpu0_before) / wall - server_cores)
    result = parse_wrk(output)
    if any(result.socket_errors.values()) or result.non_2xx_3xx:
        raise click.ClickException(
            f"{server.name} {scenario.name}: errors under load: socket {result.socket_errors},"
            f" non-2xx/3xx {result.non_2xx_3xx}\n{output}\n{server.log_tail()}")
    if result.requests == 0:
        raise click.ClickException(f"{server.name} {scenario.name}: no requests\n{output}")
    run = Run(scenario=scenario.name, server=server.name, round=round_no,
              requests=result.requests, requests_per_s=result.requests_per_s,
              p50_ms=result.p50_ms, p99_ms=result.p99_ms,
              server_cpu_cores=round(server_cores, 3),
              server_cpu_us_per_request=round(server_cpu_s / result.requests * 1e6, 1),
              cpu0_other_cores=round(cpu0_other, 3))
    console.print(f"  round {round_no} {scenario.name:8} {server.name:9}"
                  f" {run.requests_per_s:9,.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                  f"  p99 {run.p99_ms:6.2f} ms  server {server_cores:.2f} cores"
                  f" {run.server_cpu_us_per_request:5.0f} us/req"
                  f"  cpu0 other {cpu0_other:.2f}")
    return run


# --- report --------------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        means = {}
        for name in ("baseline", "fazt"):
            mine = [r for r in runs if r.scenario == scenario.name and r.server == name]
            means[name] = {
                "requests_per_s": statistics.fmean(r.requests_per_s for r in mine),
                "p50_ms": statistics.fmean(r.p50_ms for r in mine),
                "p99_ms": statistics.fmean(r.p99_ms for r in mine),
                "server_cpu_cores": statistics.fmean(r.server_cpu_cores for r in mine),
                "server_cpu_us_per_request": statistics.fmean(
                    r.server_cpu_us_per_request for r in mine),
            }
        summary[scenario.name] = {
            **means,
            "rps_ratio": means["fazt"]["requests_per_s"] / means["baseline"]["requests_per_s"],
            "p99_ratio": means["fazt"]["p99_ms"] / means["baseline"]["p99_ms"],
            # baseline CPU per request / fazt's: the req/s ratio if both had a full core
            "cpu_per_request_ratio": means["baseline"]["server_cpu_us_per_request"]
            / means["fazt"]["server_cpu_us_per_request"],
        }
    return summary


def print_report(runs: list[Run], summary: dict[str, Any]) -> None:
    table = Table(title="static serving, hypercorn -k trio, 1 worker")
    for column in ("scenario", "server", "run", "req/s", "p50 ms", "p99 ms", "server cores",
                   "CPU us/req", "cpu0 other"):
        table.add_column(column, justify="left" if column in ("scenario", "server") else "right")
    for scenario in SCENARIOS:
        for name in ("baseline", "fazt"):
            for run in (r for r in runs if r.scenario == scenario.name and r.server == name):
                table.add_row(scenario.name, name, str(run.round), f"{run.requests_per_s:,.0f}",
                              f"{run.p50_ms:.2f}", f"{run.p99_ms:.2f}",
                              f"{run.server_cpu_cores:.2f}",
                              f"{run.server_cpu_us_per_request:.0f}",
                              f"{run.cpu0_other_cores:.2f}")
            mean = summary[scenario.name][name]
            table.add_row(scenario.name, name, "mean", f"[bold]{mean['requests_per_s']:,.0f}[/]",
                          f"{mean['p50_ms']:.2f}", f"{mean['p99_ms']:.2f}",
                          f"{mean['server_cpu_cores']:.2f}",
                          f"{mean['server_cpu_us_per_request']:.0f}", "",
                          end_section=name == "fazt")
    console.print(table)
    for scenario in SCENARIOS:
        result = summary[scenario.name]
        verdict = ("[green]meets[/]" if result["rps_ratio"] >= TARGET_RPS_RATIO
                   else "[red]BELOW[/]")
        console.print(f"{scenario.name}: fazt/baseline req/s = {result['rps_ratio']:.3f} "
                      f"({verdict} target {TARGET_RPS_RATIO}); p99 = {result['p99_ratio']:.2f}x; "
                      f"CPU per request, baseline/fazt = {result['cpu_per_request_ratio']:.3f}")
    noisy = [r for r in runs if r.server_cpu_cores < 0.9 or r.cpu0_other_cores > 0.1]
    if noisy:
        console.print(f"[yellow]warning: {len(noisy)} run(s) where the server had less than a "
                      "full CPU 0 (other load on the machine): compare with care[/]")


# --- main ----------------------------------------------------------------------------------


def _raise_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--duration", "duration_s", type=click.IntRange(1), default=10, show_default=True,
              help="Seconds per measured wrk run.")
@click.option("--warmup", "warmup_s", type=click.IntRange(0), default=2, show_default=True,
              help="Seconds of wrk warm-up before each measured run.")
@click.option("--connections", type=click.IntRange(1), default=50, show_default=True,
              help="wrk connections (-c); one wrk thread.")
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True,
              help="Baseline/fazt pairs per scenario, alternated (ABAB).")
@click.option("--quick", is_flag=True, help="3 s runs (smoke test; numbers are rough).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write runs and summary as JSON here.")
def main(duration_s: int, warmup_s: int, connections: int, rounds: int, quick: bool,
         json_path: Path | None) -> None:
    """Measure fazt's static path against a bare ASGI app (see the module docstring)."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C must stop the servers even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if quick:
        duration_s = 3
    wrk_bin = ensure_wrk()
    wrk_version = subprocess.run([wrk_bin, "-v"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()[0:1]
    pin, pin_note = pinning_available()
    console.print(("" if pin else "[yellow]") + pin_note + ("" if pin else "[/]"))
    load_before = os.getloadavg()
    console.print(f"load average before start: {load_before[0]:.2f} (1 min), "
                  f"{os.cpu_count()} CPUs")
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fazt-bench-")))
        static_dir = workdir / "static"
        bodies = make_files(static_dir)
        baseline = stack.enter_context(
            running(lambda: start_baseline(workdir, static_dir, pin=pin)))
        fazt = stack.enter_context(running(lambda: start_fazt(workdir, pin=pin)))
        baseline.wait_ready(host_header=APP_HOST)
        fazt.wait_ready(host_header="localhost")
        deploy(fazt, workdir / "fazt-data", tar_gz(bodies))
        for server in (baseline, fazt):
            check_bytes(server, bodies)
        console.print(f"wrk -t1 -c{connections} -d{duration_s}s --latency "
                      f"(warm-up {warmup_s} s), {rounds} round(s), order baseline, fazt")
        for scenario in SCENARIOS:
            for round_no in range(1, rounds + 1):
                for server in (baseline, fazt):
                    runs.append(measure(wrk_bin, server, scenario, round_no=round_no,
                                        duration_s=duration_s, warmup_s=warmup_s,
                                        connections=connections, pin=pin))
    summary = summarize(runs)
    print_report(runs, summary)
    if json_path is not None:
        report = {
            "command": shlex.join([sys.executable, *sys.argv]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": {"duration_s": duration_s, "warmup_s": warmup_s,
                         "connections": connections, "wrk_threads": 1, "rounds": rounds,
                         "pinned": pin, "pinning": pin_note},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "wrk": wrk_version,
                        "load_average_before": load_before,
                        "load_average_after": os.getloadavg()},
            "scenarios": [dataclasses.asdict(s) for s in SCENARIOS],
            "files_sha256": {p: hashlib.sha256(b).hexdigest() for p, b in bodies.items()},
            "runs": [dataclasses.asdict(r) for r in runs],
            "summary": summary,
            "target_rps_ratio": TARGET_RPS_RATIO,
        }
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
