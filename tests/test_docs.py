"""Every setting and CLI command is documented (datasette's test_settings_are_documented)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from fazt.cli import main
from fazt.config import env_name, settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _headings(path: Path) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^#+\s+`([^`]+)`", path.read_text(), re.M)}


@pytest.mark.parametrize("name", [f.name for f in settings()])
def test_setting_is_documented(name: str) -> None:
    doc = DOCS / "reference" / "settings.md"
    assert name in _headings(doc), f"add a `{name}` heading to {doc}"
    assert env_name(name) in doc.read_text(), f"document {env_name(name)}"


def _commands(group: click.Group, prefix: str = "fazt") -> list[str]:
    out = []
    for name, command in sorted(group.commands.items()):
        full = f"{prefix} {name}"
        if isinstance(command, click.Group):
            out.extend(_commands(command, full))
        else:
            out.append(full)
    return out


@pytest.mark.parametrize("command", _commands(main))
def test_cli_command_is_documented(command: str) -> None:
    doc = DOCS / "reference" / "cli.md"
    assert command in _headings(doc), f"add a `{command}` heading to {doc}"


def test_every_documented_setting_exists() -> None:
    known = {f.name for f in settings()}
    documented = _headings(DOCS / "reference" / "settings.md")
    assert documented <= known, f"stale docs for {documented - known}"
