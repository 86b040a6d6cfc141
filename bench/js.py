"""Serverless JS: a JS hello handler through fazt against a bare hypercorn-trio hello app.

Run it from the repo root (needs root or sudo only if wrk must be installed)::

    .venv/bin/python bench/js.py                      # 2 rounds x 2 scenarios, 10 s each
    .venv/bin/python bench/js.py --layout shared      # server and JS workers on one CPU
    .venv/bin/python bench/js.py --quick              # 3 s runs, for a smoke test
    .venv/bin/python bench/js.py --json /tmp/js.json
    .venv/bin/python bench/js.py --allow-errors       # count error responses, do not stop

Method: the one of bench/static.py (stack-findings §6), from ``bench/_harness.py``:

* Two servers answer ``GET /api/hello`` with the same JSON, ``{"message":"hello",
  "path":"/api/hello"}``, both ``hypercorn -k trio`` with one worker, no access log, no
  ``Server`` header and a 5 s keep-alive, on 127.0.0.1 and a free port:

  - **baseline**: ``bench/_hello_app.py``, a bare ASGI app that builds the JSON per request and
    sends it with content-type and content-length. It is the ceiling for this stack.
  - **fazt**: ``fazt run`` on a fresh temporary data dir, with an app ``bench`` deployed
    through the admin API whose ``api/main.js`` is
    ``module.exports = async (request) => ({ message: "hello", path: request.path })``,
    requested with ``Host: bench.localhost``. The request goes to the app's PythonMonkey worker
    process over a pipe and back (fazt/sandbox); the server's default settings apply
    (``js_workers_per_app`` 2, ``js_worker_concurrency`` 16, ``js_spares`` 1,
    ``js_recycle_after`` 10000). The body is checked once over HTTP before any load.

* Layout (``--layout``), always with the baseline's hypercorn worker on CPU 0 and wrk on
  CPU 1 (``unpinned`` excepted):

  - **split** (default): fazt's server process on CPU 0, as the baseline; its JS worker
    processes are moved to CPU 1, beside wrk, as soon as they appear (a thread polls the
    process group every 20 ms and sets their affinity). This is how fazt runs on a 2-core
    VPS: the server's event loop has a core, the JS runs on another. The req/s ratio
    answers "given the baseline's one core, how close does fazt's server get to it?".
  - **shared**: the whole fazt process group (server + JS workers, which inherit the
    server's affinity) on CPU 0. The harsher yardstick: fazt gets no more CPU than the
    baseline in all, and pays for the JS as well.
  - **unpinned**: nothing pinned; the server, its workers and wrk share every CPU.

  The server's CPU time is read from /proc over its whole process group (JS workers
  included, recycled ones too); "cpu0 other" (pinned) or "other load" (unpinned) is busy
  CPU time neither the server's processes on that CPU nor wrk used: above ~0.1 the run was
  disturbed by other load on the machine and should be repeated.
* Scenarios, each run ``wrk -t1 -c<n> -d2s`` (warm-up) then ``wrk -t1 -c<n> -d10s --latency``,
  baseline and fazt alternating (A B A B) so drift hits both; any socket error or non-2xx/3xx
  response fails the benchmark and prints fazt's log and the app's log (``--allow-errors``
  counts them instead, for diagnosis; such a run is reported INVALID). A thread polls fazt's
  process group once a second, so the report says how many JS worker processes ran and how
  long they lived; fazt's WARNING/ERROR log lines are counted by message at the end
  (``--log-level info`` for more).

  - **throughput**: 50 connections. Target: fazt/baseline req/s >= 0.8.
  - **low-load**: 1 connection, so latency is the cost of one request with nothing queued.
    Target: fazt's p50 minus the baseline's p50 (the latency the JS path adds) <= 0.5 ms.

* Reported: every run, the mean per server and scenario, the ratios against the targets, and
  the server CPU time per request (baseline/fazt of it is the req/s ratio both would get with
  a full core each; fazt minus baseline is the CPU the JS path costs per request).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
from _harness import (
    SERVER_CPU,
    WRK_CPU,
    Run,
    Server,
    admin_headers,
    console,
    deploy,
    ensure_wrk,
    http,
    install_signal_handlers,
    measure,
    pinning_available,
    print_load,
    print_table,
    running,
    start_fazt,
    start_hypercorn,
    summarize,
    tar_gz,
    write_json,
    wrk_options,
)

HELLO_APP = Path(__file__).resolve().parent / "_hello_app.py"
APP = "bench"
APP_HOST = f"{APP}.localhost"
URL_PATH = "/api/hello"
HANDLER = 'module.exports = async (request) => ({ message: "hello", path: request.path })\n'
EXPECTED = {"message": "hello", "path": URL_PATH}
TARGET_RPS_RATIO = 0.8
TARGET_ADDED_P50_MS = 0.5


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    connections: int


SPLIT, SHARED, UNPINNED = "split", "shared", "unpinned"
LAYOUTS = (SPLIT, SHARED, UNPINNED)
THROUGHPUT = "throughput"
LOW_LOAD = "low-load"


def check_hello(server: Server) -> None:
    """The server must answer 200 with exactly the expected JSON, before any load."""
    started = time.monotonic()
    status, headers, body = http("GET", server.url(URL_PATH), headers={"Host": APP_HOST})
    elapsed_ms = (time.monotonic() - started) * 1e3
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    lower = {k.lower(): v for k, v in headers.items()}
    if status != 200 or parsed != EXPECTED:
        raise click.ClickException(f"{server.name} {URL_PATH}: HTTP {status}, body "
                                   f"{body[:500]!r} (expected 200, {EXPECTED})\n"
                                   + server.log_tail())
    missing = {"content-type", "content-length"} - set(lower)
    if missing or not lower["content-type"].startswith("application/json"):
        raise click.ClickException(f"{server.name} {URL_PATH}: headers {lower}")
    console.print(f"[dim]{server.name} {URL_PATH}: 200 in {elapsed_ms:.1f} ms (first request), "
                  f"{body.decode()} ({len(body)} bytes), headers: "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(lower.items())) + "[/]")


def print_group(server: Server, label: str) -> list[int]:
    procs = server.processes()
    console.print(f"{server.name} process group {label}: {len(procs)} process(es)")
    for pid, cmdline in procs:
        console.print(f"[dim]  {pid:>7}  {cmdline[:110]}[/]")
    return [pid for pid, _ in procs]


class WorkerWatch:
    """Polls fazt's process group once a second: when each JS worker process was first and
    last seen, so the report can say how many workers were started and how long they lived."""

    def __init__(self, server: Server, *, move_to_cpu: int | None = None) -> None:
        self._server = server
        self._move_to = move_to_cpu     # split layout: move every JS worker to this CPU
        self._t0 = time.monotonic()
        self.seen: dict[int, list[float]] = {}  # pid -> [first seen, last seen], seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="worker-watch", daemon=True)

    def __enter__(self) -> WorkerWatch:
        self._poll_once()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._poll_once()

    def _poll_once(self) -> None:
        now = round(time.monotonic() - self._t0, 1)
        for pid, cmdline in self._server.processes():
            if "fazt.sandbox.worker" in cmdline:
                if pid not in self.seen and self._move_to is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.sched_setaffinity(pid, {self._move_to})
                self.seen.setdefault(pid, [now, now])[1] = now

    def _poll(self) -> None:
        # Split layout: a worker started during the load (a recycled one's successor, a new
        # spare) runs on the server's CPU until it is moved, within 20 ms.
        while not self._stop.wait(1.0 if self._move_to is None else 0.02):
            self._poll_once()

    def report(self) -> dict[str, Any]:
        last = max((times[1] for times in self.seen.values()), default=0.0)
        ended = {pid: round(t[1] - t[0], 1) for pid, t in self.seen.items() if t[1] < last}
        console.print(f"JS worker processes seen during the load: {len(self.seen)}; "
                      f"{len(ended)} exited, after (s, first to last seen): "
                      f"{sorted(ended.values())}")
        return {"seen": len(self.seen), "exited_lifetimes_s": ended}


def log_summary(server: Server) -> dict[str, int]:
    """WARNING and ERROR lines of fazt's log, counted by message (request ids removed)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in server.log_path.read_text(errors="replace").splitlines():
        match = re.match(r"\S+ \S+ (WARNING|ERROR)\s+(.*)", line)
        if match:
            counts[re.sub(r"\b[0-9a-f]{16}\b|\b\d{3,}\b", "#", match[2])] += 1
        elif line.startswith(("AttributeError", "TypeError", "ValueError", "KeyError")):
            counts[line] += 1
    for message, count in counts.most_common():
        console.print(f"  {count:5}  {message}")
    return dict(counts)


def app_log(server: Server) -> str:
    """The app's log and fazt's process group, for a failure report."""
    lines = [f"--- {server.name} process group ---"]
    lines += [f"{pid} {cmdline}" for pid, cmdline in server.processes()]
    try:
        status, _, body = http("GET", server.url(f"/api/apps/{APP}/logs?n=50"),
                               headers=admin_headers(server), timeout=10)
        lines.append(f"--- app {APP!r} log (GET /api/apps/{APP}/logs?n=50: HTTP {status}) ---")
        lines.append(body.decode(errors="replace"))
    except OSError as exc:
        lines.append(f"--- app log unavailable: {exc} ---")
    return "\n".join(lines)


def print_report(runs: list[Run], summary: dict[str, Any], *, pin: bool,
                 layout: str) -> dict[str, Any]:
    where = {SPLIT: f"split: server on CPU {SERVER_CPU}, JS workers and wrk on CPU {WRK_CPU}",
             SHARED: f"shared: server + JS workers on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU}",
             UNPINNED: "UNPINNED: server, JS workers and wrk share all CPUs"}[layout]
    print_table(f"JS hello handler vs bare hypercorn -k trio hello, 1 worker ({where})",
                runs, summary, [THROUGHPUT, LOW_LOAD], pin=pin)
    met: dict[str, Any] = {}
    result = summary[THROUGHPUT]
    met["throughput_rps_ratio"] = result["rps_ratio"] >= TARGET_RPS_RATIO
    console.print(
        f"{THROUGHPUT} (-c{runs_of(runs, THROUGHPUT)[0].connections}): fazt/baseline req/s = "
        f"{result['rps_ratio']:.3f} ({verdict(met['throughput_rps_ratio'])} target >= "
        f"{TARGET_RPS_RATIO}); p50 {result['fazt']['p50_ms']:.2f} vs "
        f"{result['baseline']['p50_ms']:.2f} ms; p99 = {result['p99_ratio']:.2f}x; "
        f"CPU per request, baseline/fazt = {result['cpu_per_request_ratio']:.3f} "
        f"(fazt +{result['cpu_us_per_request_added']:.0f} us/req)")
    result = summary[LOW_LOAD]
    met["low_load_added_p50"] = result["p50_added_ms"] <= TARGET_ADDED_P50_MS
    per_round = [f"{f.p50_ms - b.p50_ms:+.2f}" for b, f in zip(
        runs_of(runs, LOW_LOAD, "baseline"), runs_of(runs, LOW_LOAD, "fazt"), strict=True)]
    console.print(
        f"{LOW_LOAD} (-c1): added p50 latency (fazt - baseline) = "
        f"{result['p50_added_ms']:.2f} ms ({verdict(met['low_load_added_p50'])} target <= "
        f"{TARGET_ADDED_P50_MS} ms; per round {', '.join(per_round)} ms); "
        f"p50 {result['fazt']['p50_ms']:.2f} vs {result['baseline']['p50_ms']:.2f} ms; "
        f"added p99 {result['fazt']['p99_ms'] - result['baseline']['p99_ms']:.2f} ms; "
        f"fazt/baseline req/s = {result['rps_ratio']:.3f}; "
        f"CPU per request, baseline/fazt = {result['cpu_per_request_ratio']:.3f} "
        f"(fazt +{result['cpu_us_per_request_added']:.0f} us/req)")
    for scenario in (THROUGHPUT, LOW_LOAD):
        base, fazt = summary[scenario]["baseline"], summary[scenario]["fazt"]
        console.print(
            f"{scenario}: CPU us/req by process: fazt server process "
            f"{fazt['leader_cpu_us_per_request']:.0f} + JS workers "
            f"{fazt['server_cpu_us_per_request'] - fazt['leader_cpu_us_per_request']:.0f}; "
            f"baseline hypercorn master {base['leader_cpu_us_per_request']:.0f} + worker "
            f"{base['server_cpu_us_per_request'] - base['leader_cpu_us_per_request']:.0f}")
    failed = sum(r.non_2xx_3xx + r.socket_errors for r in runs if r.server == "fazt")
    if failed:
        met["valid"] = False
        console.print(f"[red]INVALID: fazt answered {failed} request(s) with an error or not at "
                      "all (--allow-errors): its numbers include failed requests and worker "
                      "restarts; the targets are not met by a server that fails requests[/]")
    noisy = [r for r in runs if r.other_cores > 0.1
             or (layout == SHARED and r.scenario == THROUGHPUT and r.server_cpu_cores < 0.9)]
    if noisy:
        console.print(f"[yellow]warning: {len(noisy)} run(s) disturbed by other load on the "
                      "machine (other > 0.10 core, or under load the server had less than a "
                      f"full CPU {SERVER_CPU}): compare with care, or run again[/]")
    return met


def runs_of(runs: list[Run], scenario: str, server: str | None = None) -> list[Run]:
    return [r for r in runs if r.scenario == scenario and server in (None, r.server)]


def verdict(ok: bool) -> str:
    return "[green]meets[/]" if ok else "[red]MISSES[/]"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@wrk_options(rounds_help="Baseline/fazt pairs per scenario, alternated (ABAB).")
@click.option("--layout", type=click.Choice(LAYOUTS), default=SPLIT, show_default=True,
              help="Where the processes run: split (server CPU 0; wrk and fazt's JS workers "
              "CPU 1), shared (server and JS workers CPU 0; wrk CPU 1), unpinned.")
@click.option("--allow-errors", is_flag=True,
              help="Count error responses instead of failing the benchmark (diagnosis only: "
              "such a run does not meet any target).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="warning",
              show_default=True, help="fazt's FAZT_LOG_LEVEL (info shows JS worker life cycle).")
def main(duration_s: int, warmup_s: int, connections: int, rounds: int, layout: str,
         allow_errors: bool, log_level: str, quick: bool, json_path: Path | None) -> None:
    """Measure a JS hello handler through fazt against a bare ASGI app (see the docstring)."""
    install_signal_handlers()
    if quick:
        duration_s = 3
    wrk_bin = ensure_wrk()
    if layout == UNPINNED:
        pin, pin_note = False, "UNPINNED (--layout unpinned): server, its JS workers and wrk " \
            "share every CPU"
    else:
        pin, pin_note = pinning_available()
        if not pin:
            layout = UNPINNED
        elif layout == SHARED:
            pin_note += (" (--layout shared): fazt's JS workers are child processes of the "
                         "server and inherit its affinity, so server + workers share CPU "
                         f"{SERVER_CPU}")
        else:
            pin_note += (f" (--layout split): fazt's JS workers are moved to CPU {WRK_CPU} "
                         "as they appear, so fazt's server process has CPU "
                         f"{SERVER_CPU} to itself, as the baseline has")
    console.print(("" if pin else "[yellow]") + pin_note + ("" if pin else "[/]"))
    load_before = print_load()
    scenarios = (Scenario(THROUGHPUT, connections), Scenario(LOW_LOAD, 1))
    runs: list[Run] = []
    groups: dict[str, list[int]] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fazt-bench-")))
        baseline = stack.enter_context(running(lambda: start_hypercorn(
            "baseline", f"{HELLO_APP}:app", workdir, pin=pin)))
        fazt = stack.enter_context(running(
            lambda: start_fazt(workdir, pin=pin, log_level=log_level)))
        baseline.wait_ready(host_header=APP_HOST)
        fazt.wait_ready(host_header="localhost")
        deploy(fazt, APP, tar_gz({"api/main.js": HANDLER.encode()}))
        for server in (baseline, fazt):
            check_hello(server)
        groups["before"] = print_group(fazt, "before the load")
        watch = stack.enter_context(WorkerWatch(
            fazt, move_to_cpu=WRK_CPU if layout == SPLIT else None))

        def workers_cpu_seconds() -> float:    # fazt's JS workers, off CPU 0 when split
            return fazt.cpu_seconds() - fazt.leader_cpu_seconds()

        for scenario in scenarios:
            console.print(f"{scenario.name}: wrk -t1 -c{scenario.connections} -d{duration_s}s "
                          f"--latency (warm-up {warmup_s} s), {rounds} round(s), "
                          "order baseline, fazt")
            for round_no in range(1, rounds + 1):
                for server in (baseline, fazt):
                    runs.append(measure(wrk_bin, server, scenario=scenario.name,
                                        url_path=URL_PATH, host_header=APP_HOST,
                                        round_no=round_no, duration_s=duration_s,
                                        warmup_s=warmup_s, connections=scenario.connections,
                                        pin=pin, diagnose=app_log,
                                        allow_errors=allow_errors,
                                        off_cpu_seconds=workers_cpu_seconds
                                        if layout == SPLIT and server is fazt else None))
        groups["after"] = print_group(fazt, "after the load")
        watch.__exit__(None, None, None)
        workers = watch.report()
        console.print("fazt's log, WARNING and ERROR lines by message:")
        log_lines = log_summary(fazt)
        if log_lines:
            console.print(f"whole log kept in {fazt.keep_log()}")
    summary = summarize(runs, [s.name for s in scenarios])
    met = print_report(runs, summary, pin=pin, layout=layout)
    if json_path is not None:
        write_json(json_path, wrk_bin=wrk_bin, load_before=load_before, runs=runs,
                   summary=summary,
                   settings={"duration_s": duration_s, "warmup_s": warmup_s,
                             "wrk_threads": 1, "rounds": rounds, "pinned": pin,
                             "layout": layout,
                             "fazt_log_level": log_level, "allow_errors": allow_errors,
                             "pinning": pin_note},
                   scenarios=[dataclasses.asdict(s) for s in scenarios],
                   handler=HANDLER, url_path=URL_PATH, fazt_process_group=groups,
                   js_workers=workers, fazt_log_warnings=log_lines,
                   targets={"throughput_rps_ratio": TARGET_RPS_RATIO,
                            "low_load_added_p50_ms": TARGET_ADDED_P50_MS},
                   targets_met=met)


if __name__ == "__main__":
    main()
