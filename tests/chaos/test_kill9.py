"""kill -9 during deploys loses no acknowledged deploy and never corrupts the database."""

from __future__ import annotations

import random
import signal
import threading

import httpx
import pytest
import sqlcipher3

from tests.harness import make_archive, start_server

pytestmark = pytest.mark.chaos

ROUNDS = 4


def _integrity(data_dir) -> tuple[str, set[str]]:
    key = (data_dir / "db.key").read_text().strip()
    conn = sqlcipher3.connect(str(data_dir / "fazt.db"))
    try:
        conn.execute(f"PRAGMA key = \"x'{key}'\"")
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        apps = {r[0] for r in conn.execute(
            "SELECT a.name FROM apps a JOIN deploys d ON d.id = a.current_deploy_id")}
        return check, apps
    finally:
        conn.close()


def test_kill9_during_deploys_keeps_every_acknowledged_deploy(tmp_path) -> None:
    data = tmp_path / "data"
    acknowledged: set[str] = set()
    rng = random.Random(1234)
    for round_no in range(ROUNDS):
        srv = start_server(data)
        stop = threading.Event()

        def deploy_loop(srv=srv, round_no=round_no, stop=stop) -> None:
            with srv.admin() as admin:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    name = f"r{round_no}-{i}"
                    body = make_archive({"index.html": name, "pad.bin": rng.randbytes(20_000)})
                    try:
                        r = admin.post(f"/api/apps/{name}/deploy", content=body,
                                       headers={"content-type": "application/gzip"})
                    except httpx.TransportError:
                        return  # the server died mid-request: outcome unknown
                    if r.status_code == 201:
                        acknowledged.add(name)

        worker = threading.Thread(target=deploy_loop)
        worker.start()
        # kill once a random number of deploys of this round were acknowledged
        target = rng.randint(3, 25)
        while sum(1 for a in acknowledged if a.startswith(f"r{round_no}-")) < target:
            assert worker.is_alive()
            worker.join(0.01)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        stop.set()
        worker.join(30)

        check, apps = _integrity(data)
        assert check == "ok"
        missing = acknowledged - apps
        assert not missing, f"acknowledged deploys lost after kill -9: {sorted(missing)[:5]}"

    srv = start_server(data)
    try:
        sample = sorted(acknowledged)[:: max(1, len(acknowledged) // 10)]
        for name in sample:
            with srv.app(name) as client:
                assert client.get("/").text == name
    finally:
        assert srv.stop() == 0
