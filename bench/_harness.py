"""Shared machinery of the benchmarks in bench/: servers, wrk, pinning, CPU accounting, tables.

The method (stack-findings §6) in one place, so every benchmark measures the same way:

* wrk is installed with apt-get when it is missing (``apt-get update`` only if the install
  fails without it).
* Servers run ``hypercorn -k trio`` (or ``fazt run``, which is the same stack) in their own
  process group on 127.0.0.1 and a free port, with one worker, no ``Server`` header and a 5 s
  keep-alive. Every server started here is stopped on exit, Ctrl-C or error: SIGTERM to its
  process group, SIGKILL after a bounded wait.
* Pinning: the server with ``taskset -c 0``, wrk with ``taskset -c 1``. Children inherit the
  affinity, so everything in the server's process group (hypercorn's worker process, fazt's JS
  worker processes) shares CPU 0. Unpinned when taskset or a second CPU is missing, or when a
  benchmark asks for it.
* CPU accounting from /proc: the server's CPU time is the user + system time of every live
  process in its process group plus the time of the children they have reaped (a JS worker
  recycled during a run still counts). "other" is the busy time of the server's CPUs that the
  server did not use: pinned, CPU 0's busy time minus the server's; unpinned, every CPU's busy
  time minus the server's and wrk's. Above ~0.1 core the run was disturbed by other load.
  "CPU us/req" (server CPU time / requests) moves much less than req/s when the machine is
  shared; baseline/fazt of it is the req/s ratio both would get with a full core each.
* A measured run is an optional wrk warm-up then ``wrk -t1 -c<n> -d<s>s --latency``. Any
  socket error or non-2xx/3xx response fails the benchmark, with the server's log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
import os
import platform
import re
import resource
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVER_CPU = 0
WRK_CPU = 1
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SHUTDOWN_GRACE_S = 2
SERVERS = ("baseline", "fazt")

# Wide enough for the table when the output is piped to a file.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)


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
    connections: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_cores: float  # CPU time of the server's process group / wall time
    server_cpu_us_per_request: float  # the same CPU time / requests: robust to stolen CPU
    other_cores: float  # busy time of the server's CPUs not used by the server (nor wrk)
    wrk_cpu_cores: float  # wrk's own CPU time / wall time
    # The part of server_cpu_us_per_request spent in the process started (the group leader:
    # fazt's server process, hypercorn's master); the rest is in its children (fazt's JS
    # workers, hypercorn's worker process).
    leader_cpu_us_per_request: float
    # Only with allow_errors (otherwise a run with errors fails the benchmark).
    non_2xx_3xx: int = 0
    socket_errors: int = 0


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


def wrk_version(wrk_bin: str) -> list[str]:
    return subprocess.run([wrk_bin, "-v"], capture_output=True, text=True,
                          check=False).stdout.splitlines()[0:1]


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


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A deterministic tar.gz of ``files`` (path inside the archive, a leading / dropped)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def http(method: str, url: str, *, headers: dict[str, str], body: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


# --- servers -------------------------------------------------------------------------------


class Server:
    """A server in its own process group, stopped (bounded in time) by :meth:`stop`."""

    def __init__(self, name: str, cmd: list[str], *, port: int, log_path: Path,
                 env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self.data_dir: Path | None = None  # fazt's, for the admin token
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

    def keep_log(self) -> Path:
        """Copy the whole log out of the temporary directory (which is removed on exit)."""
        self._log.flush()
        fd, name = tempfile.mkstemp(prefix=f"fazt-bench-{self.name}-", suffix=".log")
        os.close(fd)
        shutil.copyfile(self.log_path, name)
        return Path(name)

    def _group_stats(self) -> Iterator[tuple[int, list[str]]]:
        """(pid, /proc/<pid>/stat fields from field 3 on) of every process in the group."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rfind(")") + 2:].split()
            # fields[0] is field 3 (state): pgrp is field 5.
            if int(fields[2]) == self.pgid:
                yield int(stat.parent.name), fields

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every live process in the server's process group."""
        out = []
        for pid, _ in self._group_stats():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            out.append((pid, cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
        return sorted(out)

    def cpu_seconds(self) -> float:
        """CPU time of the server's process group: user + system time of every live process
        in it, plus that of the children they reaped (fields 14-17 of /proc/<pid>/stat)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for _, fields in self._group_stats():
            total += sum(int(v) for v in fields[11:15])
        return total / tick

    def leader_cpu_seconds(self) -> float:
        """User + system CPU time of the process started (the group leader) alone."""
        try:
            text = Path(f"/proc/{self.pgid}/stat").read_text()
        except OSError:
            return 0.0
        fields = text[text.rfind(")") + 2:].split()
        return sum(int(v) for v in fields[11:13]) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{self.name} ignored SIGTERM: SIGKILL[/]")
        # Also reap anything left in the group (hypercorn's worker process, JS workers).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def running(server_factory: Callable[[], Server]) -> Iterator[Server]:
    server = server_factory()
    try:
        yield server
    finally:
        server.stop()


def start_hypercorn(name: str, app_spec: str, workdir: Path, *, pin: bool,
                    env: dict[str, str] | None = None) -> Server:
    """``hypercorn -k trio`` with one worker, serving ``app_spec`` (``path/to/file.py:app``)."""
    port = free_port()
    config = workdir / f"{name}-hypercorn.toml"
    config.write_text(f'bind = ["{HOST}:{port}"]\nworker_class = "trio"\nworkers = 1\n'
                      f"include_server_header = false\nkeep_alive_timeout = 5\n"
                      f"graceful_timeout = {SHUTDOWN_GRACE_S}\n")
    cmd = pinned([str(BIN / "hypercorn"), "-c", str(config), app_spec], SERVER_CPU, pin=pin)
    return Server(name, cmd, port=port, log_path=workdir / f"{name}.log",
                  env={**os.environ, **(env or {})}, cwd=workdir)


def start_fazt(workdir: Path, *, pin: bool, log_level: str = "warning") -> Server:
    """``fazt run`` on a fresh data dir under ``workdir`` (its own hypercorn-trio server)."""
    port = free_port()
    data_dir = workdir / "fazt-data"
    env = {**os.environ, "FAZT_LOG_LEVEL": log_level,
           "FAZT_SHUTDOWN_GRACE_S": str(SHUTDOWN_GRACE_S)}
    env.pop("FAZT_HOME", None)
    env.pop("FAZT_DB_KEY", None)
    cmd = pinned([str(BIN / "fazt"), "run", "--host", HOST, "--port", str(port),
                  "--data-dir", str(data_dir)], SERVER_CPU, pin=pin)
    server = Server("fazt", cmd, port=port, log_path=workdir / "fazt.log", env=env, cwd=workdir)
    server.data_dir = data_dir
    return server


def admin_headers(server: Server) -> dict[str, str]:
    assert server.data_dir is not None, "not a fazt server"
    token = (server.data_dir / "admin.token").read_text().strip()
    return {"Host": "localhost", "Authorization": f"Bearer {token}"}


def deploy(server: Server, app: str, archive: bytes) -> None:
    """Deploy a tar.gz as ``app`` through fazt's admin API."""
    status, _, body = http("POST", server.url(f"/api/apps/{app}/deploy"), body=archive,
                           headers={**admin_headers(server), "Content-Type": "application/gzip"})
    if status not in (200, 201):
        raise click.ClickException(f"deploy failed: HTTP {status}: {body[:500]!r}")
    console.print(f"deployed app {app!r}: {json.loads(body)['deploy']}")


# --- wrk -----------------------------------------------------------------------------------

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


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


def wrk(wrk_bin: str, url: str, *, host_header: str, duration_s: int, connections: int,
        pin: bool, script: Path | None = None) -> str:
    """One wrk run; ``script``: a wrk Lua script (e.g. one choosing each request's path)."""
    extra = ["-s", str(script)] if script is not None else []
    cmd = pinned([wrk_bin, "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency",
                  "-H", f"Host: {host_header}", *extra, url], WRK_CPU, pin=pin)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30,
                          check=False)
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                                   f"{done.stdout}{done.stderr}")
    return done.stdout


def busy_seconds(cpu: int | None) -> float:
    """Busy time (everything but idle and iowait) of one CPU, or of all CPUs when None."""
    tick = os.sysconf("SC_CLK_TCK")
    prefix = "cpu " if cpu is None else f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values[:8]) - values[3] - values[4]) / tick
    return 0.0


def children_cpu_seconds() -> float:
    """CPU time of this process's reaped children (wrk, once subprocess.run returned)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(wrk_bin: str, server: Server, *, scenario: str, url_path: str, host_header: str,
            round_no: int, duration_s: int, warmup_s: int, connections: int, pin: bool,
            diagnose: Callable[[Server], str] | None = None, allow_errors: bool = False,
            off_cpu_seconds: Callable[[], float] | None = None,
            script: Path | None = None) -> Run:
    """One warm-up and one measured wrk run against ``server``; fails on any error response
    (socket error or non-2xx/3xx), unless ``allow_errors``: then they are counted in the Run.

    ``diagnose`` adds text (an app's log, say) to the error when the run had errors.
    ``off_cpu_seconds`` (pinned only): CPU seconds of those of the server's processes that
    were moved off the server's CPU, left out of that CPU's "other" load.
    """
    url = server.url(url_path)
    if warmup_s > 0:
        wrk(wrk_bin, url, host_header=host_header, duration_s=warmup_s,
            connections=connections, pin=pin, script=script)
    cpu = None if not pin else SERVER_CPU
    moved = off_cpu_seconds or (lambda: 0.0)
    before = (server.cpu_seconds(), busy_seconds(cpu), children_cpu_seconds(), time.monotonic(),
              server.leader_cpu_seconds(), moved())
    output = wrk(wrk_bin, url, host_header=host_header, duration_s=duration_s,
                 connections=connections, pin=pin, script=script)
    wall = time.monotonic() - before[3]
    server_cpu_s = server.cpu_seconds() - before[0]
    server_cores = server_cpu_s / wall
    leader_cpu_s = server.leader_cpu_seconds() - before[4]
    wrk_cores = (children_cpu_seconds() - before[2]) / wall
    busy = (busy_seconds(cpu) - before[1]) / wall
    moved_cores = (moved() - before[5]) / wall
    other = max(0.0, busy - (server_cores - moved_cores) - (0.0 if pin else wrk_cores))
    result = parse_wrk(output)
    socket_errors = sum(result.socket_errors.values())
    errors = bool(socket_errors or result.non_2xx_3xx)
    if result.requests == 0 or (errors and not allow_errors):
        kept = server.keep_log()
        extra = diagnose(server) if diagnose is not None else ""
        raise click.ClickException(
            f"{server.name} {scenario}: errors under load: socket {result.socket_errors},"
            f" non-2xx/3xx {result.non_2xx_3xx}, {result.requests} requests\n{output}\n"
            f"--- {server.name}'s log (last 60 lines; all of it in {kept}) ---\n"
            f"{server.log_tail(60)}\n{extra}")
    run = Run(scenario=scenario, server=server.name, round=round_no, connections=connections,
              requests=result.requests, requests_per_s=result.requests_per_s,
              p50_ms=result.p50_ms, p99_ms=result.p99_ms,
              server_cpu_cores=round(server_cores, 3),
              server_cpu_us_per_request=round(server_cpu_s / result.requests * 1e6, 1),
              other_cores=round(other, 3), wrk_cpu_cores=round(wrk_cores, 3),
              leader_cpu_us_per_request=round(leader_cpu_s / result.requests * 1e6, 1),
              non_2xx_3xx=result.non_2xx_3xx, socket_errors=socket_errors)
    console.print(f"  round {round_no} {scenario:10} {server.name:9}"
                  f" {run.requests_per_s:9,.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                  f"  p99 {run.p99_ms:6.2f} ms  server {server_cores:.2f} cores"
                  f" {run.server_cpu_us_per_request:5.0f} us/req"
                  f"  {other_label(pin)} {other:.2f}  wrk {wrk_cores:.2f}"
                  + (f"  [red]ERRORS: non-2xx/3xx {result.non_2xx_3xx}, socket "
                     f"{result.socket_errors}[/]" if errors else ""))
    return run


def other_label(pin: bool) -> str:
    return f"cpu{SERVER_CPU} other" if pin else "other load"


# --- report --------------------------------------------------------------------------------


def summarize(runs: Sequence[Run], scenarios: Iterable[str]) -> dict[str, Any]:
    """Per scenario: the mean of each server's runs, and fazt against the baseline."""
    summary: dict[str, Any] = {}
    for scenario in scenarios:
        means = {}
        for name in SERVERS:
            mine = [r for r in runs if r.scenario == scenario and r.server == name]
            means[name] = {
                "requests_per_s": statistics.fmean(r.requests_per_s for r in mine),
                "p50_ms": statistics.fmean(r.p50_ms for r in mine),
                "p99_ms": statistics.fmean(r.p99_ms for r in mine),
                "server_cpu_cores": statistics.fmean(r.server_cpu_cores for r in mine),
                "server_cpu_us_per_request": statistics.fmean(
                    r.server_cpu_us_per_request for r in mine),
                "leader_cpu_us_per_request": statistics.fmean(
                    r.leader_cpu_us_per_request for r in mine),
            }
        base, fazt = means["baseline"], means["fazt"]
        summary[scenario] = {
            **means,
            "rps_ratio": fazt["requests_per_s"] / base["requests_per_s"],
            "p50_added_ms": fazt["p50_ms"] - base["p50_ms"],
            "p99_ratio": fazt["p99_ms"] / base["p99_ms"],
            # baseline CPU per request / fazt's: the req/s ratio if both had a full core
            "cpu_per_request_ratio": base["server_cpu_us_per_request"]
            / fazt["server_cpu_us_per_request"],
            "cpu_us_per_request_added": fazt["server_cpu_us_per_request"]
            - base["server_cpu_us_per_request"],
        }
    return summary


def print_table(title: str, runs: Sequence[Run], summary: dict[str, Any],
                scenarios: Iterable[str], *, pin: bool) -> None:
    table = Table(title=title)
    with_errors = any(r.non_2xx_3xx or r.socket_errors for r in runs)
    columns = ["scenario", "server", "run", "req/s", "p50 ms", "p99 ms", "server cores",
               "CPU us/req", other_label(pin), "wrk cores"]
    if with_errors:
        columns.append("errors non2xx/sock")
    for column in columns:
        table.add_column(column, justify="left" if column in ("scenario", "server") else "right")
    for scenario in scenarios:
        for name in SERVERS:
            for run in (r for r in runs if r.scenario == scenario and r.server == name):
                table.add_row(scenario, name, str(run.round), f"{run.requests_per_s:,.0f}",
                              f"{run.p50_ms:.2f}", f"{run.p99_ms:.2f}",
                              f"{run.server_cpu_cores:.2f}",
                              f"{run.server_cpu_us_per_request:.0f}",
                              f"{run.other_cores:.2f}", f"{run.wrk_cpu_cores:.2f}",
                              *([f"{run.non_2xx_3xx}/{run.socket_errors}"] if with_errors
                                else []))
            mean = summary[scenario][name]
            table.add_row(scenario, name, "mean", f"[bold]{mean['requests_per_s']:,.0f}[/]",
                          f"{mean['p50_ms']:.2f}", f"{mean['p99_ms']:.2f}",
                          f"{mean['server_cpu_cores']:.2f}",
                          f"{mean['server_cpu_us_per_request']:.0f}", "", "",
                          *([""] if with_errors else []), end_section=name == SERVERS[-1])
    console.print(table)


# --- main helpers --------------------------------------------------------------------------


def wrk_options(*, rounds_help: str, duration_help: str = "Seconds per measured wrk run."
                ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every wrk benchmark takes: --duration, --warmup, --connections, --rounds,
    --quick and --json (as ``duration_s``, ``warmup_s``, ``connections``, ``rounds``, ``quick``,
    ``json_path``)."""
    options = [
        click.option("--duration", "duration_s", type=click.IntRange(1), default=10,
                     show_default=True, help=duration_help),
        click.option("--warmup", "warmup_s", type=click.IntRange(0), default=2,
                     show_default=True, help="Seconds of wrk warm-up before each measured run."),
        click.option("--connections", type=click.IntRange(1), default=50, show_default=True,
                     help="wrk connections (-c); one wrk thread."),
        click.option("--rounds", type=click.IntRange(1), default=2, show_default=True,
                     help=rounds_help),
        click.option("--quick", is_flag=True, help="3 s runs (smoke test; numbers are rough)."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write runs and summary as JSON here."),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate



def _raise_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM and Ctrl-C unwind the stack, so every server is stopped."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C must stop the servers even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def print_load() -> tuple[float, float, float]:
    load = os.getloadavg()
    console.print(f"load average before start: {load[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    return load


def write_json(path: Path, *, settings: dict[str, Any], wrk_bin: str,
               load_before: tuple[float, float, float], runs: Sequence[Run],
               summary: dict[str, Any], **extra: Any) -> None:
    report = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "wrk": wrk_version(wrk_bin),
                    "load_average_before": load_before,
                    "load_average_after": os.getloadavg()},
        **extra,
        "runs": [dataclasses.asdict(r) for r in runs],
        "summary": summary,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {path}")
