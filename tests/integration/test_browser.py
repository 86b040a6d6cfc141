"""A real headless Chromium against a real `fazt run`: what a user's browser actually renders.

Chromium resolves ``*.localhost`` to loopback by itself, so ``http://<app>.localhost:<port>/``
works with no DNS or hosts-file setup, exactly as the first-start banner tells users. Chromium is
a system package: ``./dev test`` installs it; without it these tests fail (never skip), because a
silently skipped browser test proves nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import pytest

from tests.harness import FaztServer, clean_env

pytestmark = pytest.mark.integration

CHROMIUM_TIMEOUT_S = 60
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--disable-extensions", "--mute-audio",
)

PROBE_VALUE = "probe-7c31-came-from-data-json"
PROBE_FILES = {
    "index.html": """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>browser probe</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
  <p id="out">waiting for fetch</p>
  <p id="missing">waiting for 404</p>
  <p id="css">waiting for css</p>
  <p id="probe">styled by style.css</p>
  <script>
    fetch("/data.json")
      .then((r) => r.json().then((d) => {
        document.getElementById("out").textContent =
          "fetched:" + r.status + ":" + r.headers.get("content-type") + ":" + d.message;
      }))
      .catch((e) => { document.getElementById("out").textContent = "fetch failed: " + e; });
    fetch("/no-such-file.json")
      .then((r) => { document.getElementById("missing").textContent = "missing:" + r.status; });
    window.addEventListener("load", () => {
      const color = getComputedStyle(document.getElementById("probe")).color;
      document.getElementById("css").textContent = "css:" + color;
    });
  </script>
</body>
</html>
""",
    "style.css": "#probe { color: rgb(1, 2, 3); }\n",
    "data.json": json.dumps({"message": PROBE_VALUE}),
}


def find_chromium() -> str:
    """The chromium binary; a missing one fails the calling test (it is never skipped)."""
    found = shutil.which("chromium") or ("/usr/bin/chromium"
                                         if os.access("/usr/bin/chromium", os.X_OK) else None)
    if found is None:
        pytest.fail("chromium is not installed: run ./dev test (it installs chromium with "
                    "apt-get), or `apt-get install -y chromium`", pytrace=False)
    return found


def run_chromium(chromium: str, tmp_path: Path, url: str, *args: str) -> str:
    """Run one headless Chromium on ``url``; return its stdout. Bounded; leaves no process."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    env = clean_env(HOME=str(tmp_path))
    for proxy in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                  "ALL_PROXY"):
        env.pop(proxy, None)
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT_S} s on {url}")
    finally:
        _kill_group(proc.pid)  # helpers (zygote, crashpad) must not outlive the test
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}:\n{err[-3000:]}"
    return out


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def dump_dom(chromium: str, tmp_path: Path, url: str) -> str:
    return run_chromium(chromium, tmp_path, url, "--virtual-time-budget=5000", "--dump-dom")


def test_hello_example_renders_in_a_real_browser(server: FaztServer,
                                                 tmp_path: Path) -> None:
    chromium = find_chromium()
    dom = dump_dom(chromium, tmp_path, f"http://hello.localhost:{server.port}/")
    assert "<title>hello from fazt</title>" in dom
    assert "<h1>Hello from fazt</h1>" in dom
    # app.js fetched /api/hello?name=browser: the example's serverless handler answered
    result = re.search(r'<pre id="api-result">([^<]*)</pre>', dom)
    assert result is not None, dom
    assert "Hello, browser!" in result.group(1), result.group(0)
    # ... and counted the visit in the app's kv store (granted by its manifest)
    assert re.search(r"\(visit [1-9][0-9]*\)", result.group(1)), result.group(0)


def test_script_fetches_same_origin_json_and_css_applies(server: FaztServer,
                                                         tmp_path: Path) -> None:
    chromium = find_chromium()
    r = server.deploy("browser-probe", dict(PROBE_FILES))
    assert r.status_code == 201, r.text
    dom = dump_dom(chromium, tmp_path, f"http://browser-probe.localhost:{server.port}/")
    assert PROBE_VALUE not in PROBE_FILES["index.html"], "the value must come from the fetch"
    assert f"fetched:200:application/json:{PROBE_VALUE}" in dom, dom
    assert "missing:404" in dom, dom
    assert "css:rgb(1, 2, 3)" in dom, "style.css was loaded and applied"


def test_screenshot_is_a_real_png(server: FaztServer, tmp_path: Path) -> None:
    chromium = find_chromium()
    shot = tmp_path / "shot.png"
    run_chromium(chromium, tmp_path, f"http://hello.localhost:{server.port}/",
                 f"--screenshot={shot}", "--window-size=1024,768")
    assert shot.is_file(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1024, f"screenshot is only {len(data)} bytes"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1024, 768)
