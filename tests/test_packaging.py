"""The wheel ships the migrations (from the repo root), the example app and the entry point."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("fazt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (REPO / "migrations").glob("*.sql"))
    assert migrations, "the repo has migrations"
    for name in migrations:
        assert f"fazt/migrations/{name}" in names
    assert "fazt/examples/hello/index.html" in names
    assert "fazt/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fazt = fazt.cli:main" in text
