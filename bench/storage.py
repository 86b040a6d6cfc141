"""Storage through JS handlers: kv reads, kv writes and a 70/30 mix, against pure reads in
the same run; and the storage layer's own durable writes per second.

Run it from the repo root::

    .venv/bin/python bench/storage.py              # 2 rounds x 3 scenarios, 10 s each
    .venv/bin/python bench/storage.py --quick      # 3 s runs, for a smoke test
    .venv/bin/python bench/storage.py --json /tmp/storage.json

Method (the harness of bench/js.py, ``bench/_harness.py``):

* ``fazt run`` on a fresh temporary data dir (real SQLCipher, ``synchronous=FULL``), with an
  app ``kvbench`` whose manifest grants ``kv`` and whose handler is ``HANDLER`` below. Before
  the load, ``KEYS`` keys are written through the handler, so reads find a value.
* Scenarios, each ``wrk -t1 -c50`` with a Lua script that picks a random key of ``KEYS`` per
  request; rounds alternate the scenarios (reads, writes, mixed, reads, ...):

  - **reads**: ``GET /api/get?k=N`` -> ``kv.get``;
  - **writes**: ``POST /api/set?k=N`` -> ``kv.set`` (acknowledged only once its group-commit
    batch is durable);
  - **mixed**: 70 % reads, 30 % writes, chosen at random per request.

  Target: mixed >= 0.9 of reads' requests per second (the Go fazt fell from 19.5k reads/s to
  2.3k mixed, because every write waited alone for its own commit).
* Layout: fazt's server on CPU 0, wrk and its JS workers on CPU 1 (``--layout split`` of
  bench/js.py), when pinning is available.
* **raw**: the storage layer alone, in this process: ``Database.write`` of one small upsert
  from 1 and from 64 concurrent trio tasks for ``--duration`` seconds each; every counted write
  returned, i.e. was committed durably.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import trio
from _harness import (
    WRK_CPU,
    Run,
    console,
    deploy,
    ensure_wrk,
    http,
    install_signal_handlers,
    measure,
    pinning_available,
    print_load,
    running,
    start_fazt,
    tar_gz,
    write_json,
    wrk_options,
)
from js import WorkerWatch
from rich.table import Table

from fazt.storage import Database, StorageSettings

APP = "kvbench"
APP_HOST = f"{APP}.localhost"
KEYS = 1000
MANIFEST = b'{"capabilities": {"kv": {}}}'
HANDLER = b"""module.exports = async (request, { kv }) => {
  const key = 'k' + request.query.k;
  if (request.path === '/api/get') return { key, value: await kv.get(key) };
  if (request.path === '/api/set') {
    await kv.set(key, { n: Number(request.query.k), at: request.requestId });
    return { key, ok: true };
  }
  return { status: 404, json: { error: 'no such path' } };
};
"""
TARGET_MIXED_RATIO = 0.9
SCRIPT_TEMPLATE = """
math.randomseed(os.time())
local keys = {keys}
local write_share = {write_share}
request = function()
  local k = math.random(1, keys)
  if math.random() < write_share then
    return wrk.format("POST", "/api/set?k=" .. k, nil, "")
  end
  return wrk.format("GET", "/api/get?k=" .. k)
end
"""


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    write_share: float


SCENARIOS = (Scenario("reads", 0.0), Scenario("writes", 1.0), Scenario("mixed", 0.3))


def seed(server: Any) -> None:
    for k in range(1, KEYS + 1):
        status, _, body = http("POST", server.url(f"/api/set?k={k}"), body=b"",
                               headers={"Host": APP_HOST})
        if status != 200:
            raise click.ClickException(f"seeding key {k}: HTTP {status}: {body[:300]!r}")
    status, _, body = http("GET", server.url("/api/get?k=7"), headers={"Host": APP_HOST})
    if status != 200 or b'"n":7' not in body:
        raise click.ClickException(f"reading a seeded key: HTTP {status}: {body[:300]!r}")


def raw_writes(workdir: Path, *, duration_s: float, tasks: int) -> dict[str, float]:
    """Durable writes per second of the storage layer alone, from ``tasks`` trio tasks."""
    db = Database.open(StorageSettings(path=workdir / f"raw-{tasks}.db",
                                       key=secrets.token_bytes(32)))
    count = 0

    async def main() -> float:
        nonlocal count
        await db.write(lambda c: c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"),
                       deadline=trio.current_time() + 10)
        end = time.monotonic() + duration_s

        async def writer(i: int) -> None:
            nonlocal count
            n = 0
            while time.monotonic() < end:
                key = i * 1_000_000 + n % 1000
                await db.write(lambda c, key=key: c.execute(
                    "INSERT INTO t VALUES (?, 'value') ON CONFLICT DO UPDATE SET v = 'value2'",
                    (key,)), deadline=trio.current_time() + 10)
                n += 1
                count += 1

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for i in range(tasks):
                nursery.start_soon(writer, i)
        return time.monotonic() - started

    try:
        elapsed = trio.run(main)
        stats = db.stats()
    finally:
        db.close()
    return {"tasks": tasks, "writes": count, "writes_per_s": count / elapsed,
            "mean_batch": stats.writes_committed / max(1, stats.batches_committed),
            "commit_p50_ms": stats.commit_latency_p50_ms}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@wrk_options(rounds_help="Rounds; each runs every scenario once, in turn.",
             duration_help="Seconds per measured wrk run (and per raw-writes run).")
def main(duration_s: int, warmup_s: int, connections: int, rounds: int, quick: bool,
         json_path: Path | None) -> None:
    """Measure kv through JS handlers, and the storage layer's durable writes (docstring)."""
    install_signal_handlers()
    if quick:
        duration_s = 3
    wrk_bin = ensure_wrk()
    pin, pin_note = pinning_available()
    console.print(pin_note + (f"; fazt's JS workers are moved to CPU {WRK_CPU}" if pin else ""))
    load_before = print_load()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fazt-bench-")))
        fazt = stack.enter_context(running(lambda: start_fazt(workdir, pin=pin)))
        fazt.wait_ready(host_header="localhost")
        deploy(fazt, APP, tar_gz({"manifest.json": MANIFEST, "api/main.js": HANDLER}))
        stack.enter_context(WorkerWatch(fazt, move_to_cpu=WRK_CPU if pin else None))
        seed(fazt)
        scripts = {}
        for scenario in SCENARIOS:
            script = workdir / f"{scenario.name}.lua"
            script.write_text(SCRIPT_TEMPLATE.format(keys=KEYS, write_share=scenario.write_share))
            scripts[scenario.name] = script

        def workers_cpu_seconds() -> float:
            return fazt.cpu_seconds() - fazt.leader_cpu_seconds()

        for round_no in range(1, rounds + 1):
            for scenario in SCENARIOS:
                runs.append(measure(wrk_bin, fazt, scenario=scenario.name, url_path="/",
                                    host_header=APP_HOST, round_no=round_no,
                                    duration_s=duration_s, warmup_s=warmup_s,
                                    connections=connections, pin=pin,
                                    off_cpu_seconds=workers_cpu_seconds if pin else None,
                                    script=scripts[scenario.name]))
        console.print(f"raw storage writes: 1 and 64 trio tasks, {duration_s} s each")
        raw = [raw_writes(workdir, duration_s=duration_s, tasks=n) for n in (1, 64)]
    means = {s.name: sum(r.requests_per_s for r in runs if r.scenario == s.name) / rounds
             for s in SCENARIOS}
    table = Table(title="kv through JS handlers (fazt run, wrk -c"
                  f"{connections}), and the storage layer alone")
    for column in ("scenario", "req/s (mean)", "per round", "p50 ms", "p99 ms", "vs reads"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for scenario in SCENARIOS:
        mine = [r for r in runs if r.scenario == scenario.name]
        table.add_row(scenario.name, f"{means[scenario.name]:,.0f}",
                      ", ".join(f"{r.requests_per_s:,.0f}" for r in mine),
                      f"{sum(r.p50_ms for r in mine) / len(mine):.2f}",
                      f"{sum(r.p99_ms for r in mine) / len(mine):.2f}",
                      f"{means[scenario.name] / means['reads']:.3f}")
    for item in raw:
        table.add_row(f"raw writes x{item['tasks']}", f"{item['writes_per_s']:,.0f}",
                      f"batch {item['mean_batch']:.1f}", f"commit {item['commit_p50_ms']:.2f}",
                      "", "")
    console.print(table)
    ratio = means["mixed"] / means["reads"]
    met = ratio >= TARGET_MIXED_RATIO
    console.print(f"mixed (70 % reads / 30 % writes) / pure reads = {ratio:.3f} "
                  + ("[green](meets[/]" if met else "[red](MISSES[/]")
                  + f" target >= {TARGET_MIXED_RATIO})")
    if json_path is not None:
        write_json(json_path, wrk_bin=wrk_bin, load_before=load_before, runs=runs,
                   summary={"means_rps": means, "mixed_over_reads": ratio, "raw_writes": raw},
                   settings={"duration_s": duration_s, "warmup_s": warmup_s,
                             "connections": connections, "rounds": rounds, "pinned": pin,
                             "keys": KEYS},
                   scenarios=[dataclasses.asdict(s) for s in SCENARIOS],
                   handler=HANDLER.decode(), targets={"mixed_over_reads": TARGET_MIXED_RATIO},
                   targets_met=met)


if __name__ == "__main__":
    main()
