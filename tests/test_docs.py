"""Every setting, CLI command, admin API route and error code is documented, and links in the
docs point to files that exist (datasette's test_settings_are_documented)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from fazt import errors
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


# -- the admin API and its errors are documented (docs/reference/api.md) ------------------------

API_DOC = DOCS / "reference" / "api.md"
ROOT = DOCS.parent


def _admin_routes() -> list[str]:
    """Every ``METHOD /path`` the admin quart app serves, with ``<name>`` written ``{name}``."""
    from fazt.capabilities import AppSettings, Capabilities
    from fazt.capabilities.net import NetProvider
    from fazt.config import Config
    from fazt.http import AdminContext, create_admin_app

    # create_admin_app only stores the context (and reads the config's body limit); the
    # storage-backed parts are never touched while routes are registered. The net routes are
    # registered only when there is a net capability (as `fazt run` always has): its
    # constructor only stores its parts.
    net = NetProvider(None, None, None)  # type: ignore[arg-type]
    ctx = AdminContext(config=Config(), db=None, hosting=None, tokens=None,  # type: ignore[arg-type]
                       logs=None, started_at=0.0, net=net,
                       capabilities=Capabilities(settings=AppSettings(None, op_timeout_s=1)))  # type: ignore[arg-type]
    app = create_admin_app(ctx)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue   # quart's default static-folder rule; fazt has no static folder
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes.update(f"{method} {path}" for method in rule.methods or ()
                      if method not in ("HEAD", "OPTIONS"))
    return sorted(routes)


def test_admin_routes_are_found() -> None:
    routes = _admin_routes()
    assert "GET /api/apps" in routes
    assert "DELETE /api/apps/{name}" in routes
    assert "POST /api/net/rules" in routes           # the net routes, registered with net
    assert "DELETE /api/net/rules/{entry}" in routes


@pytest.mark.parametrize("route", _admin_routes())
def test_admin_route_is_documented(route: str) -> None:
    assert route in _headings(API_DOC), f"add a `## `{route}`` heading to {API_DOC}"


def _error_classes() -> list[type[errors.FaztError]]:
    return sorted((obj for obj in vars(errors).values()
                   if isinstance(obj, type) and issubclass(obj, errors.FaztError)),
                  key=lambda cls: cls.__name__)


def _instantiate(cls: type[errors.FaztError]) -> errors.FaztError:
    """An instance, passing a ``<name>`` placeholder for each required keyword-only argument
    (so ``BudgetExceeded(phase="<phase>")`` has the code ``<phase>_timeout``)."""
    required = {name: f"<{name}>" for name, param in inspect.signature(cls).parameters.items()
                if param.kind is param.KEYWORD_ONLY and param.default is param.empty}
    return cls(**required)


# Errors of the tree that stop `fazt run` at start-up and never become an HTTP response
# (see the tree in fazt/errors.py): documented by code, without a status.
START_UP_ONLY = {"ConfigError", "WrongKey"}


def _table_rows(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("|")]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_error_code_is_documented(cls: type[errors.FaztError]) -> None:
    error = _instantiate(cls)
    code = f"`{error.code}`"
    if cls.__name__ in START_UP_ONLY:
        assert code in API_DOC.read_text(), f"mention start-up error {code} in {API_DOC}"
        return
    rows = [row for row in _table_rows(API_DOC) if row.split("|")[1].strip() == code]
    assert rows, f"add a row for {code} ({error.http_status}) to the error table in {API_DOC}"
    assert any(f"| {error.http_status} |" in row for row in rows), \
        f"the row for {code} in {API_DOC} must give its status {error.http_status}"


def test_every_error_class_is_instantiable() -> None:
    classes = _error_classes()
    assert errors.BudgetExceeded in classes
    assert _instantiate(errors.BudgetExceeded).code == "<phase>_timeout"


def test_framework_error_codes_are_documented() -> None:
    from fazt.http._admin import _HTTP_CODES

    documented = {row.split("|")[1].strip() for row in _table_rows(API_DOC)}
    missing = {f"`{code}`" for code in [*_HTTP_CODES.values(), "http_error"]} - documented
    assert not missing, f"add {sorted(missing)} to the error table in {API_DOC}"


# -- links between docs point somewhere -----------------------------------------------------------

_FENCED = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _relative_links(path: Path) -> list[str]:
    text = _INLINE_CODE.sub("", _FENCED.sub("", path.read_text()))
    targets = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue   # http:, https:, mailto: ... and links within the page
        targets.append(target.split("#", 1)[0])
    return targets


def test_link_checker_sees_links() -> None:
    assert "docs/reference/settings.md" in _relative_links(ROOT / "README.md")


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(path: Path) -> None:
    broken = [target for target in _relative_links(path)
              if not (path.parent / target).exists()]
    assert not broken, f"{path.relative_to(ROOT)} links to missing files: {broken}"


def test_api_index_lists_exactly_the_routes() -> None:
    """GET /api/ advertises every authenticated route and nothing that does not exist."""
    from fazt.http.routes_system import ENDPOINTS

    api = (DOCS / "reference" / "api.md").read_text()
    for endpoint in ENDPOINTS:
        assert f"## `{endpoint}`" in api, endpoint
    served = {route for route in _admin_routes() if route not in ("GET /api", "GET /api/")}
    assert sorted(ENDPOINTS) == sorted(served)


# -- every capability method is documented (docs/reference/capabilities.md) ----------------------

CAPABILITIES_DOC = DOCS / "reference" / "capabilities.md"


def _capability_methods() -> list[str]:
    """``cap.method`` for every method a provider serves (``kv.user.get`` included)."""
    from fazt.capabilities.blobs import BlobStore
    from fazt.capabilities.docs import DocStore
    from fazt.capabilities.kv import KvStore

    # The constructors only store the database; provider() never touches it.
    providers = [KvStore(None).provider(), DocStore(None).provider(),  # type: ignore[arg-type]
                 BlobStore(None, url_secret=b"x" * 32).provider()]  # type: ignore[arg-type]
    return sorted(f"{p.name}.{method}" for p in providers for method in p.methods)


def _documented_code() -> set[str]:
    """What the capabilities reference writes as code, in headings, tables and prose: each
    inline code span, and its text before a ``(`` (``docs.find(collection, query)`` names
    ``docs.find``)."""
    text = _FENCED.sub("", CAPABILITIES_DOC.read_text())
    spans = {m.group(0)[1:-1] for m in _INLINE_CODE.finditer(text)}
    return spans | {span.split("(", 1)[0] for span in spans}


def test_capability_methods_are_found() -> None:
    methods = _capability_methods()
    assert {"kv.get", "kv.user.increment", "docs.findOne", "docs.user.insertMany",
            "blobs.url", "blobs.user.url"} <= set(methods)


@pytest.mark.parametrize("method", _capability_methods())
def test_capability_method_is_documented(method: str) -> None:
    assert method in _documented_code(), \
        f"document `{method}` (a heading or inline code) in {CAPABILITIES_DOC}"
