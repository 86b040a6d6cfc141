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

The machinery (wrk install, pinning, servers and their clean-up, CPU accounting, tables) is
shared with the other benchmarks in ``bench/_harness.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import random
import tempfile
from pathlib import Path
from typing import Any

import click
from _harness import (
    Run,
    Server,
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

BASELINE_APP = Path(__file__).resolve().parent / "_baseline_app.py"
APP = "bench"
APP_HOST = f"{APP}.localhost"
TARGET_RPS_RATIO = 0.85


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    url_path: str  # also the file's path inside the deploy, with a leading slash
    size_bytes: int


SCENARIOS = (
    Scenario("html-4k", "/index.html", 4 * 1024),
    Scenario("js-64k", "/assets/app.3f9a2b1c.js", 64 * 1024),
)


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


# --- report --------------------------------------------------------------------------------


def print_report(runs: list[Run], summary: dict[str, Any], *, pin: bool) -> None:
    names = [s.name for s in SCENARIOS]
    print_table("static serving, hypercorn -k trio, 1 worker", runs, summary, names, pin=pin)
    for name in names:
        result = summary[name]
        verdict = ("[green]meets[/]" if result["rps_ratio"] >= TARGET_RPS_RATIO
                   else "[red]BELOW[/]")
        console.print(f"{name}: fazt/baseline req/s = {result['rps_ratio']:.3f} "
                      f"({verdict} target {TARGET_RPS_RATIO}); p99 = {result['p99_ratio']:.2f}x; "
                      f"CPU per request, baseline/fazt = {result['cpu_per_request_ratio']:.3f}")
    noisy = [r for r in runs if r.server_cpu_cores < 0.9 or r.other_cores > 0.1]
    if noisy:
        console.print(f"[yellow]warning: {len(noisy)} run(s) where the server had less than a "
                      "full CPU 0 (other load on the machine): compare with care[/]")


# --- main ----------------------------------------------------------------------------------


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@wrk_options(rounds_help="Baseline/fazt pairs per scenario, alternated (ABAB).")
def main(duration_s: int, warmup_s: int, connections: int, rounds: int, quick: bool,
         json_path: Path | None) -> None:
    """Measure fazt's static path against a bare ASGI app (see the module docstring)."""
    install_signal_handlers()
    if quick:
        duration_s = 3
    wrk_bin = ensure_wrk()
    pin, pin_note = pinning_available()
    console.print(("" if pin else "[yellow]") + pin_note + ("" if pin else "[/]"))
    load_before = print_load()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fazt-bench-")))
        static_dir = workdir / "static"
        bodies = make_files(static_dir)
        baseline = stack.enter_context(running(lambda: start_hypercorn(
            "baseline", f"{BASELINE_APP}:app", workdir, pin=pin,
            env={"FAZT_BENCH_STATIC_DIR": str(static_dir)})))
        fazt = stack.enter_context(running(lambda: start_fazt(workdir, pin=pin)))
        baseline.wait_ready(host_header=APP_HOST)
        fazt.wait_ready(host_header="localhost")
        deploy(fazt, APP, tar_gz(bodies))
        for server in (baseline, fazt):
            check_bytes(server, bodies)
        console.print(f"wrk -t1 -c{connections} -d{duration_s}s --latency "
                      f"(warm-up {warmup_s} s), {rounds} round(s), order baseline, fazt")
        for scenario in SCENARIOS:
            for round_no in range(1, rounds + 1):
                for server in (baseline, fazt):
                    runs.append(measure(wrk_bin, server, scenario=scenario.name,
                                        url_path=scenario.url_path, host_header=APP_HOST,
                                        round_no=round_no, duration_s=duration_s,
                                        warmup_s=warmup_s, connections=connections, pin=pin))
    summary = summarize(runs, [s.name for s in SCENARIOS])
    print_report(runs, summary, pin=pin)
    if json_path is not None:
        write_json(json_path, wrk_bin=wrk_bin, load_before=load_before, runs=runs,
                   summary=summary,
                   settings={"duration_s": duration_s, "warmup_s": warmup_s,
                             "connections": connections, "wrk_threads": 1, "rounds": rounds,
                             "pinned": pin, "pinning": pin_note},
                   scenarios=[dataclasses.asdict(s) for s in SCENARIOS],
                   files_sha256={p: hashlib.sha256(b).hexdigest() for p, b in bodies.items()},
                   target_rps_ratio=TARGET_RPS_RATIO)


if __name__ == "__main__":
    main()
