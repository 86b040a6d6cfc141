"""The `fazt` command line (click + rich)."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import click
import trio
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from fazt import __version__
from fazt.client import AdminClient, ClientError, resolve_target
from fazt.config import load_config
from fazt.errors import FaztError, InvalidAppName

# Piped or under cron, rich would wrap at 80 columns: long URLs and table rows must stay whole.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)
F = TypeVar("F", bound=Callable[..., Any])
_UPLOAD_CHUNK = 64 * 1024
_LOG_LEVELS = ("debug", "info", "warn", "error")
_FOLLOW_WAIT_S = 25           # per long poll; the client's read timeout (120 s) is well above
_FOLLOW_PAGE_LINES = 1000
# Log messages are untrusted (an app writes them): no control character reaches the terminal
# as is, so none can move the cursor, retitle the window or fake a line (\n is indented).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="fazt")
def main() -> None:
    """fazt: a personal cloud in one Python install and one encrypted SQLite file."""


# -- fazt run --------------------------------------------------------------------------------


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.option("--domain", help="Apps are served on <app>.<domain> (default localhost).")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar=None,
              help="Data dir (default $FAZT_HOME or ./.fazt).")
def run(host: str | None, port: int | None, domain: str | None, data_dir: str | None) -> None:
    """Run the server until Ctrl-C / SIGTERM."""
    from fazt.app import Started, serve
    from fazt.nursery import ServiceCrashed

    try:
        config = load_config({"host": host, "port": port, "domain": domain,
                              "data_dir": data_dir})
    except FaztError as exc:
        _fail(str(exc))
        return
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def ready(started: Started) -> None:
        shown = config
        if started.binds and config.port == 0:   # --port 0: show the port the OS picked
            shown = dataclasses.replace(config, port=int(started.binds[0].rsplit(":", 1)[1]))
        if started.fresh_database:
            console.print(f"created encrypted database {config.db_path}")
        if started.admin_token:
            console.print(f"[bold]admin token[/] (shown once, saved to {config.token_path}):")
            console.print(f"  {started.admin_token}", highlight=False, soft_wrap=True)
        if started.example_deployed:
            console.print("deployed the example app [bold]hello[/]")
        console.print(f"listening on {', '.join(started.binds)}")
        console.print(f"  app:       {shown.public_url('hello')}", highlight=False)
        console.print(f"  admin API: {shown.public_url()}", highlight=False)
        console.print("press Ctrl-C to stop", style="dim")

    try:
        trio.run(lambda: serve(config, on_ready=ready))
    except ServiceCrashed as exc:
        cause = exc.__cause__
        while isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        detail = cause.message if isinstance(cause, FaztError) else str(cause or exc)
        _fail(f"{exc.service} failed: {detail}")
    console.print("stopped cleanly")


# -- API client commands -----------------------------------------------------------------------


def _client_options(func: F) -> F:
    func = click.option("--url", help="Server URL (default $FAZT_URL or the local server).")(func)
    func = click.option("--token", help="Admin token (default $FAZT_TOKEN or the data dir).")(
        func)
    func = click.option("--data-dir", type=click.Path(file_okay=False),
                        help="Local data dir to read the token and address from.")(func)
    return func


def _call(kwargs: dict[str, Any], method: str, path: str, **request: Any) -> Any:
    try:
        target = resolve_target(url=kwargs.pop("url"), token=kwargs.pop("token"),
                                data_dir=kwargs.pop("data_dir"))
        with AdminClient(target) as client:
            return client.request(method, path, **request)
    except ClientError as exc:
        _fail(f"{exc.code}: {exc}")
    except FaztError as exc:   # a bad local config while looking for the server
        _fail(f"{exc.code}: {exc}")


def _client(kwargs: dict[str, Any]) -> AdminClient:
    """A client for several calls (``_call`` makes one)."""
    return AdminClient(resolve_target(url=kwargs.pop("url"), token=kwargs.pop("token"),
                                      data_dir=kwargs.pop("data_dir")))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@main.group()
def app() -> None:
    """Deploy and manage apps."""


@app.command("deploy")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", help="App name (default: the directory's name).")
@_client_options
def app_deploy(directory: Path, name: str | None, **kwargs: Any) -> None:
    """Pack DIRECTORY (skipping dotfiles, node_modules and .gitignore'd files) and deploy it."""
    from fazt.hosting import collect_files, pack_tar_gz, validate_app_name

    hint = "" if name else " (choose one with --name)"
    name = name or directory.resolve().name.lower()
    try:
        validate_app_name(name)
        files, warnings = collect_files(directory)
    except FaztError as exc:
        _fail(f"{exc}{hint if isinstance(exc, InvalidAppName) else ''}")
        return
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not files:
        _fail(f"{directory} has no files to deploy (dotfiles, node_modules and .gitignore'd "
              "files are skipped)")
    total = sum(f.size for f in files)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"packing {len(files)} files", total=total)
        archive = pack_tar_gz(files, on_progress=lambda n: progress.advance(task, n))
        upload = progress.add_task("uploading", total=len(archive))

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(archive), _UPLOAD_CHUNK):
                chunk = archive[start:start + _UPLOAD_CHUNK]
                yield chunk
                progress.advance(upload, len(chunk))

        result = _call(kwargs, "POST", f"/api/apps/{name}/deploy", content=chunks(),
                       headers={"content-type": "application/gzip",
                                "content-length": str(len(archive))})
    deploy = result["deploy"]
    count = deploy["file_count"]
    console.print(f"deployed [bold]{name}[/] (deploy {deploy['id']}, {count} "
                  f"file{'' if count == 1 else 's'}, {_size(deploy['total_bytes'])})")
    for skipped in result.get("skipped", []):
        err_console.print(f"[yellow]skipped:[/] {skipped}", highlight=False)
    console.print(result["url"], highlight=False, soft_wrap=True)


@app.command("list")
@_client_options
def app_list(**kwargs: Any) -> None:
    """List apps."""
    apps = _call(kwargs, "GET", "/api/apps")["apps"]
    table = Table("name", "deploy", "files", "size", "deployed at", "url")
    for item in apps:
        current = item["current"] or {}
        table.add_row(item["name"], str(current.get("id", "-")),
                      str(current.get("file_count", "-")),
                      _size(current["total_bytes"]) if current else "-",
                      current.get("created_at", "-"), item["url"])
    console.print(table if apps else "no apps yet: `fazt app deploy DIR`")


@app.command("info")
@click.argument("name")
@_client_options
def app_info(name: str, **kwargs: Any) -> None:
    """Show an app and its deploy history."""
    info = _call(kwargs, "GET", f"/api/apps/{name}")
    console.print(f"[bold]{info['name']}[/]  {info['url']}", highlight=False)
    console.print(f"created {info['created_at']}")
    table = Table("deploy", "", "files", "size", "spa", "runtime", "source", "created at")
    for d in info["deploys"]:
        table.add_row(str(d["id"]), "live" if d["current"] else "", str(d["file_count"]),
                      _size(d["total_bytes"]), "yes" if d["spa"] else "",
                      "Go compat" if d.get("runtime") == "go" else "fazt", d["source"],
                      d["created_at"])
    console.print(table)
    if (info.get("current") or {}).get("runtime") == "go":
        console.print("runtime: Go fazt compatibility (manifest without \"capabilities\", "
                      "api/main.js a Go fazt script): kv, docs, blobs, env and net are granted",
                      highlight=False)
    _print_capabilities(info["capabilities"])


def _print_capabilities(caps: dict[str, Any]) -> None:
    requested = caps["requested"]
    if requested is None:
        console.print("capabilities: none requested (the manifest has no \"capabilities\")")
        return
    table = Table("capability", "requested", "granted", "used")
    usage = caps.get("usage_bytes", {})
    for name in sorted(set(requested) | set(caps["granted"])):
        granted = caps["granted"].get(name)
        table.add_row(name, _describe_grant(requested.get(name)),
                      "withheld by policy" if name in caps["withheld"]
                      else _describe_grant(granted),
                      _size(usage[name]) if name in usage else "-")
    console.print(table if len(table.rows) else "capabilities: none requested")
    rules = caps.get("net_rules") or []
    if rules:
        console.print("net rules (calls go only to hosts a rule matches): "
                      + ", ".join(f"{r['domain']}" + ("" if r["app"] else " (every app)")
                                  for r in rules), highlight=False)


def _describe_grant(value: Any) -> str:
    if value is None:
        return "-"
    if value == "*":
        return "every name"
    if isinstance(value, list):
        return ", ".join(value) or "(no names)"
    if "allow" in value:        # net
        allow = "hosts the net rules allow" if value["allow"] == "operator" \
            else ", ".join(value["allow"])
        secrets = value["secrets"]
        return (f"allow {allow}" + (f"; secrets {_describe_grant(secrets)}" if secrets else "")
                + (f"; timeout {value['timeoutMs']} ms" if "timeoutMs" in value else ""))
    return f"quota {value['quota_mb']} MB" if "quota_mb" in value else "yes"


@app.command("policy")
@click.argument("name")
@click.option("--withhold", multiple=True, metavar="CAP",
              help="Do not grant CAP to the app, whatever its manifest asks (repeatable).")
@click.option("--allow", multiple=True, metavar="CAP",
              help="Grant CAP again if the manifest asks for it (repeatable).")
@click.option("--quota", multiple=True, metavar="CAP=MB",
              help="Lower CAP's storage quota to MB; CAP=default restores it (repeatable).")
@click.option("--reset", is_flag=True, help="Drop the app's whole policy first.")
@_client_options
def app_policy(name: str, withhold: tuple[str, ...], allow: tuple[str, ...],
               quota: tuple[str, ...], reset: bool, **kwargs: Any) -> None:
    """Show or change what the operator grants an app (its manifest asks; the policy can
    withhold a capability or lower a quota). With no option, show it."""
    quotas: dict[str, int | None] = {}
    for item in quota:
        cap, sep, mb = item.partition("=")
        if not sep or not cap or not (mb.isdigit() or mb == "default"):
            _fail(f"--quota {item!r}: write CAP=MB (e.g. kv=10) or CAP=default")
        quotas[cap] = None if mb == "default" else int(mb)
    if withhold or allow or quotas or reset:
        result = _call(kwargs, "POST", f"/api/apps/{quote(name, safe='')}/policy",
                       json={"withhold": list(withhold), "allow": list(allow),
                             "quota_mb": quotas, "reset": reset})
    else:
        result = _call(kwargs, "GET", f"/api/apps/{quote(name, safe='')}/policy")
    caps = result["capabilities"]
    policy = caps["policy"]
    console.print(f"policy for [bold]{name}[/]: withheld "
                  f"{', '.join(policy['withheld']) or 'nothing'}; quotas "
                  f"{', '.join(f'{k}={v} MB' for k, v in policy['quota_mb'].items()) or 'default'}",
                  highlight=False)
    _print_capabilities(caps)


@app.group("env")
def app_env() -> None:
    """Operator-set, non-secret settings an app's handler reads as caps.env (only the names
    its manifest lists under "env"). A change reloads the app's JS workers."""


@app_env.command("set")
@click.argument("name")
@click.argument("values", nargs=-1, required=True, metavar="NAME=VALUE...")
@_client_options
def app_env_set(name: str, values: tuple[str, ...], **kwargs: Any) -> None:
    """Set one or more env values."""
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"{item!r}: write NAME=VALUE")
        pairs[key] = value
    result = _call(kwargs, "PATCH", f"/api/apps/{quote(name, safe='')}/env",
                   json={"set": pairs})
    console.print(f"set {', '.join(pairs)} for [bold]{name}[/] "
                  f"({len(result['env'])} env value{'' if len(result['env']) == 1 else 's'})",
                  highlight=False)


@app_env.command("unset")
@click.argument("name")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@_client_options
def app_env_unset(name: str, names: tuple[str, ...], **kwargs: Any) -> None:
    """Remove env values (names not set are ignored)."""
    _call(kwargs, "PATCH", f"/api/apps/{quote(name, safe='')}/env", json={"unset": list(names)})
    console.print(f"unset {', '.join(names)} for [bold]{name}[/]", highlight=False)


@app_env.command("list")
@click.argument("name")
@_client_options
def app_env_list(name: str, **kwargs: Any) -> None:
    """Print an app's env values, NAME=VALUE per line."""
    env = _call(kwargs, "GET", f"/api/apps/{quote(name, safe='')}/env")["env"]
    if not env:
        err_console.print(f"no env values for {name}", highlight=False, markup=False)
    for key, value in env.items():
        click.echo(f"{key}={_printable(value)}")


@app.command("validate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def app_validate(directory: Path) -> None:
    """Check DIRECTORY as a deploy would (manifest.json, and every api/ JavaScript file
    compiled, not run) without deploying it."""
    from fazt.hosting import (
        MANIFEST_PATH,
        collect_files,
        parse_manifest,
        runtime_of,
        unknown_keys,
    )
    from fazt.sandbox.check import check_sources

    try:
        files, warnings = collect_files(directory)
    except FaztError as exc:
        _fail(str(exc))
        return
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    by_path = {f.path: f for f in files}
    problems: list[str] = []
    manifest_file = by_path.get(MANIFEST_PATH)
    manifest_data = manifest_file.source.read_bytes() if manifest_file else None
    try:
        manifest = parse_manifest(manifest_data)
    except FaztError as exc:
        problems.append(str(exc))
        manifest = None
    if manifest_data is not None and manifest is not None:
        for key in unknown_keys(manifest_data):
            err_console.print(f"[yellow]warning:[/] manifest.json: \"{key}\" is not a key "
                              "fazt reads (ignored)", highlight=False)
    sources: dict[str, str] = {}
    for path, file in by_path.items():
        if path.startswith("api/") and path.endswith((".js", ".json")):
            try:
                sources[path] = file.source.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"{path} is not UTF-8 text")
    if sources and "api/main.js" not in sources:
        problems.append("api/ has files but no api/main.js (the handler)")
    problems.extend(check_sources(sources))
    for problem in problems:
        err_console.print(f"[red]error:[/] {problem}", highlight=False, markup=True)
    if problems:
        _fail(f"{directory}: {len(problems)} problem{'' if len(problems) == 1 else 's'}")
    assert manifest is not None
    main = sources.get("api/main.js")
    if runtime_of(manifest, None if main is None else main.encode("utf-8")) == "go":
        console.print(f"{directory}: ok ({len(files)} files, {len(sources)} in api/; runtime: "
                      "Go fazt compatibility, with kv, docs, blobs, env and net granted: see "
                      "docs/reference/go-compat.md)", highlight=False)
        return
    caps = manifest.capabilities
    console.print(f"{directory}: ok ({len(files)} files, {len(sources)} in api/; capabilities: "
                  f"{', '.join(sorted(caps.items)) if caps and caps.items else 'none'})",
                  highlight=False)


@app.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_client_options
def app_remove(name: str, yes: bool, **kwargs: Any) -> None:
    """Remove an app with its deploy history."""
    if not yes and not click.confirm(f"remove app {name!r} and all its deploys?"):
        _fail("not removed")
    _call(kwargs, "DELETE", f"/api/apps/{name}")
    console.print(f"removed [bold]{name}[/]")


@app.command("rollback")
@click.argument("name")
@click.option("--to", "to", type=int, help="Deploy id to make live (default: the previous one).")
@_client_options
def app_rollback(name: str, to: int | None, **kwargs: Any) -> None:
    """Make an earlier deploy live again."""
    body = {} if to is None else {"to": to}
    result = _call(kwargs, "POST", f"/api/apps/{name}/rollback", json=body)
    console.print(f"[bold]{name}[/] now serves deploy {result['deploy']['id']}")


@app.command("logs")
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=100, show_default=True,
              metavar="N", help="How many of the newest lines to print.")
@click.option("-f", "--follow", is_flag=True, help="Then print new lines as they come, until "
              "Ctrl-C.")
@click.option("--level", type=click.Choice(_LOG_LEVELS), help="Only this level and above.")
@click.option("--request-id", help="Only the lines of one request (its X-Request-ID).")
@_client_options
def app_logs(name: str, count: int, follow: bool, level: str | None, request_id: str | None,
             **kwargs: Any) -> None:
    """Print what an app's serverless JavaScript logged, oldest first."""
    filters: dict[str, str | int] = {k: v for k, v in
                                     (("level", level), ("request_id", request_id)) if v}
    _print_and_follow(kwargs, f"/api/apps/{quote(name, safe='')}/logs", filters, count=count,
                      follow=follow, items="lines", printer=_print_log_lines,
                      what=f"log lines for {name}", following=name)


def _print_and_follow(kwargs: dict[str, Any], path: str, filters: dict[str, str | int], *,
                      count: int, follow: bool, items: str,
                      printer: Callable[[list[dict[str, Any]]], None], what: str,
                      following: str) -> None:
    """Print the newest ``count`` items of a log endpoint; with ``follow``, then long-poll
    for newer ones until Ctrl-C."""
    try:
        with _client(kwargs) as client:
            page = client.request("GET", f"{path}?{urlencode({'n': count, **filters})}")
            printer(page[items])
            if not follow:
                if not page[items]:
                    err_console.print(f"no {what}", highlight=False, markup=False)
                return
            err_console.print(f"following {following} (Ctrl-C to stop)", highlight=False,
                              markup=False)
            while True:
                query = {"n": _FOLLOW_PAGE_LINES, "after": page["next"], "wait": _FOLLOW_WAIT_S,
                         **filters}
                page = client.request("GET", f"{path}?{urlencode(query)}")
                printer(page[items])
    except KeyboardInterrupt:
        return
    except ClientError as exc:
        _fail(f"{exc.code}: {exc}")
    except FaztError as exc:   # a bad local config while looking for the server
        _fail(f"{exc.code}: {exc}")


def _print_log_lines(lines: list[dict[str, Any]]) -> None:
    for line in lines:
        text = (f"{line['ts']} {str(line['level']).upper()} [{line['request_id'] or '-'}] "
                f"{line['message']}")
        click.echo(_printable(text).replace("\n", "\n    "))


def _printable(text: str) -> str:
    """Untrusted text with its control characters (but \\n) shown as \\xNN escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@main.group()
def token() -> None:
    """Create, list and revoke admin API tokens."""


@token.command("create")
@click.option("--name", required=True, help="What the token is for (e.g. 'laptop', 'ci').")
@_client_options
def token_create(name: str, **kwargs: Any) -> None:
    """Create a token; its secret is shown once."""
    result = _call(kwargs, "POST", "/api/tokens", json={"name": name})
    err_console.print(f"created token {result['token']['id']} ({name}); the secret is shown once:")
    click.echo(result["secret"])


@token.command("list")
@_client_options
def token_list(**kwargs: Any) -> None:
    """List tokens (never their secrets)."""
    tokens = _call(kwargs, "GET", "/api/tokens")["tokens"]
    table = Table("id", "name", "created at", "last used", "revoked")
    for t in tokens:
        table.add_row(t["id"], t["name"], t["created_at"], t["last_used_at"] or "-",
                      t["revoked_at"] or "")
    console.print(table)


@token.command("revoke")
@click.argument("token_id")
@_client_options
def token_revoke(token_id: str, **kwargs: Any) -> None:
    """Revoke a token by id."""
    _call(kwargs, "DELETE", f"/api/tokens/{token_id}")
    console.print(f"revoked {token_id}")


# -- fazt net, fazt secret ----------------------------------------------------------------------


@main.group()
def net() -> None:
    """Where apps' net.fetch may go (rules), and the log of their calls.

    An app with no rule may reach the hosts its manifest lists under "net"."allow"; once a
    rule applies to it (its own, or one for every app), only hosts a rule matches."""


@net.command("allow")
@click.argument("entry")
@click.option("--app", "app_name", metavar="APP", help="For this app only (default: every app).")
@click.option("--rate", type=click.FloatRange(0, 100_000), metavar="PER_S",
              help="Calls per second to what the entry matches, per app (0: no limit; "
              "default the server's net_rate_per_s).")
@click.option("--burst", type=click.IntRange(1, 1_000_000), metavar="N",
              help="Calls allowed at once before the rate applies (default net_rate_burst).")
@click.option("--cache-ttl", type=click.IntRange(0, 86_400 * 30), metavar="SECONDS",
              help="Cache successful GET answers (without a secret) this long.")
@_client_options
def net_allow(entry: str, app_name: str | None, rate: float | None, burst: int | None,
              cache_ttl: int | None, **kwargs: Any) -> None:
    """Allow ENTRY, written as a manifest's net.allow entries: api.github.com (https on 443),
    *.example.com (the hosts under it), http://example.org, api.example.com:8443."""
    body = {"domain": entry, "app": app_name, "rate_per_s": rate, "burst": burst,
            "cache_ttl_s": cache_ttl}
    rule = _call(kwargs, "POST", "/api/net/rules",
                 json={k: v for k, v in body.items() if v is not None})["rule"]
    console.print(f"allowed {rule['domain']} for {_whom(rule['app'])}", highlight=False)


@net.command("remove")
@click.argument("entry")
@click.option("--app", "app_name", metavar="APP", help="The app's own rule (default: the rule "
              "for every app).")
@_client_options
def net_remove(entry: str, app_name: str | None, **kwargs: Any) -> None:
    """Remove a rule (ENTRY as it was allowed)."""
    removed = _call(kwargs, "DELETE",
                    f"/api/net/rules/{quote(entry, safe='')}{_app_query(app_name)}")
    console.print(f"removed the rule for {removed['removed']['domain']} ({_whom(app_name)})",
                  highlight=False)


@net.command("list")
@_client_options
def net_list(**kwargs: Any) -> None:
    """List the rules, with the cache's hits and misses per domain."""
    result = _call(kwargs, "GET", "/api/net/rules")
    hits, misses = result["cache"]["hits"], result["cache"]["misses"]
    table = Table("domain", "app", "rate/s", "burst", "cache ttl", "cache hits/misses")
    for rule in result["rules"]:
        domain = rule["domain"]
        table.add_row(domain, rule["app"] or "(every app)",
                      "default" if rule["rate_per_s"] is None else f"{rule['rate_per_s']:g}",
                      "default" if rule["burst"] is None else str(rule["burst"]),
                      "-" if not rule["cache_ttl_s"] else f"{rule['cache_ttl_s']} s",
                      f"{hits.get(domain, 0)}/{misses.get(domain, 0)}"
                      if rule["cache_ttl_s"] else "-")
    if not result["rules"]:
        err_console.print("no net rules: each app may reach what its manifest allows",
                          highlight=False, markup=False)
        return
    console.print(table)


@net.command("log")
@click.option("--app", "app_name", metavar="APP", help="Only this app's calls.")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=100, show_default=True,
              metavar="N", help="How many of the newest calls to print.")
@click.option("-f", "--follow", is_flag=True, help="Then print new calls as they come, until "
              "Ctrl-C.")
@_client_options
def net_log(app_name: str | None, count: int, follow: bool, **kwargs: Any) -> None:
    """Print apps' outbound calls, oldest first (never query strings nor secrets)."""
    _print_and_follow(kwargs, "/api/net/log", {"app": app_name} if app_name else {},
                      count=count, follow=follow, items="calls", printer=_print_net_calls,
                      what="net calls" + (f" for {app_name}" if app_name else ""),
                      following=f"the net calls of {app_name or 'every app'}")


def _print_net_calls(calls: list[dict[str, Any]]) -> None:
    for c in calls:
        outcome = c["error"] or str(c["status"])
        text = (f"{c['ts']} {c['app']} [{c['request_id'] or '-'}] {c['method']} {c['host']}"
                f"{c['path']} {outcome} {c['bytes_in']} B {c['duration_ms']:.0f} ms"
                + (" (cached)" if c["cached"] else ""))
        click.echo(_printable(text))


@main.group()
def secret() -> None:
    """Credentials fazt adds to apps' net.fetch calls: a handler names one
    (net.fetch(url, {secret: "NAME"})) and never sees its value."""


@secret.command("set")
@click.argument("name")
@click.option("--as", "inject", required=True, metavar="bearer|header:NAME|query:NAME",
              help="How it is sent: Authorization: Bearer, a header, or a query parameter.")
@click.option("--app", "app_name", metavar="APP", help="For this app only (default: every app "
              "that lists it in its manifest).")
@click.option("--domain", metavar="ENTRY", help="Only ever send it where ENTRY matches, "
              "written as a manifest's net.allow entry (api.github.com: https on 443; "
              "*.example.com; http://example.org:8080). Required without --app; default: "
              "the origin each call names.")
@_client_options
def secret_set(name: str, inject: str, app_name: str | None, domain: str | None,
               **kwargs: Any) -> None:
    """Store a secret; its value is read from standard input (or asked for, hidden), never
    from the command line, where other users could see it."""
    if sys.stdin.isatty():
        value = click.prompt(f"value of {name}", hide_input=True, err=True)
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value:
        _fail("the value is empty (give it on standard input)")
    body = {"value": value, "as": inject, "app": app_name, "domain": domain}
    result = _call(kwargs, "PUT", f"/api/net/secrets/{quote(name, safe='')}",
                   json={k: v for k, v in body.items() if v is not None})["secret"]
    console.print(f"stored {name} for {_whom(result['app'])}, sent as {result['as']}"
                  + (f" to {result['domain']} only" if result["domain"] else ""),
                  highlight=False)


@secret.command("list")
@_client_options
def secret_list(**kwargs: Any) -> None:
    """List secrets, their values masked."""
    secrets = _call(kwargs, "GET", "/api/net/secrets")["secrets"]
    if not secrets:
        err_console.print("no secrets", highlight=False, markup=False)
        return
    table = Table("name", "app", "sent as", "domain", "value", "updated")
    for s in secrets:
        table.add_row(s["name"], s["app"] or "(every app)", s["as"], s["domain"] or "(the "
                      "call's host)", s["value"], s["updated_at"])
    console.print(table)


@secret.command("remove")
@click.argument("name")
@click.option("--app", "app_name", metavar="APP", help="The app's own secret (default: the "
              "one for every app).")
@_client_options
def secret_remove(name: str, app_name: str | None, **kwargs: Any) -> None:
    """Remove a secret."""
    _call(kwargs, "DELETE", f"/api/net/secrets/{quote(name, safe='')}{_app_query(app_name)}")
    console.print(f"removed {name} ({_whom(app_name)})", highlight=False)


def _app_query(app_name: str | None) -> str:
    return f"?{urlencode({'app': app_name})}" if app_name else ""


def _whom(app_name: str | None) -> str:
    return f"app {app_name}" if app_name else "every app"


# -- fazt debug ----------------------------------------------------------------------------------


@main.group()
def debug() -> None:
    """See inside a running server: its pools, requests, budgets, storage and egress."""


@debug.command("runtime")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON as it is.")
@_client_options
def debug_runtime(as_json: bool, **kwargs: Any) -> None:
    """Show the live state of the server (GET /api/_debug/runtime)."""
    view = _call(kwargs, "GET", "/api/_debug/runtime")
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    p = view["process"]
    console.print(f"fazt {p['version']}  pid {p['pid']}  up {p['uptime_s']:.0f} s  "
                  f"RSS {_size(p['rss_bytes'])}  {p['open_fds']} fds  "
                  f"{p['trio_tasks']} tasks", highlight=False)
    sandbox = view["sandbox"]
    counters = ", ".join(f"{k} {v}" for k, v in sandbox["counters"].items())
    console.print(f"JS workers: {sandbox['reserved_mb']} of {sandbox['total_memory_mb']} MB "
                  f"reserved, {sandbox['spares']} spare; {counters}", highlight=False)
    workers = Table("app", "pid", "state", "in flight", "served", "age", "RSS",
                    title="workers")
    pools = Table("app", "deploy", "workers", "busy", "idle", "queued", "longest wait",
                  title="pools")
    for app_name, pool in sorted(sandbox["pools"].items()):
        pools.add_row(Text(app_name), str(pool["deploy_id"]), str(len(pool["workers"])),
                      str(pool["busy"]), str(pool["idle"]), str(pool["queued"]),
                      f"{pool['longest_wait_s'] * 1000:.0f} ms")
        for w in pool["workers"]:
            workers.add_row(Text(app_name), str(w["pid"]), w["state"], str(w["in_flight"]),
                            str(w["served"]), f"{w['age_s']:.0f} s",
                            "-" if w["rss_bytes"] is None else _size(w["rss_bytes"]))
    console.print(pools, workers)
    requests = Table("app", "method", "path", "request id", "age", "budget left",
                     title=f"requests in flight ({view['requests']['served']} served)")
    for r in view["requests"]["in_flight"]:
        requests.add_row(Text(r["app"]), r["method"], Text(_printable(r["path"])),
                         Text(r["request_id"]), f"{r['age_ms']:.0f} ms",
                         f"{r['budget_left_ms']:.0f} ms")
    budget = Table("phase", "operations", "p50 per request", "p99", "ran out",
                   title="budget")
    for phase, b in view["budget"].items():
        budget.add_row(phase, str(b["count"]), f"{b['p50_ms']:.1f} ms", f"{b['p99_ms']:.1f} ms",
                       str(b["exceeded"]))
    console.print(requests, budget)
    s = view["storage"]
    console.print(f"storage: {_size(s['db_bytes'])} + WAL {_size(s['wal_bytes'])}; writer "
                  f"queue {s['writer_queue_depth']}, {s['writes_committed']} writes in "
                  f"{s['batches_committed']} batches (largest {s['max_batch_size']}), commit "
                  f"p50 {s['commit_latency_p50_ms']:.1f} ms p99 "
                  f"{s['commit_latency_p99_ms']:.1f} ms; readers {s['readers_busy']}/"
                  f"{s['readers']} busy, queue {s['reader_queue_depth']}", highlight=False)
    e = view["egress"]
    if e is not None:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(e["recent_errors"].items())) or "none"
        console.print(f"egress: {e['in_flight']} in flight, {e['dns_lookups_in_flight']} DNS "
                      f"lookups; errors in the last {e['recent_calls']} calls: {errors}",
                      highlight=False)


# -- fazt sql ------------------------------------------------------------------------------------


@main.command()
@click.argument("query")
@click.option("--write", is_flag=True, help="Allow the statement to change the database "
              "(without it, SQLite refuses any write).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="How to print the rows.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True,
              help="The most rows to print.")
@click.option("--local", is_flag=True, help="Open the data dir's database directly (the "
              "server need not run) instead of asking the server.")
@_client_options
def sql(query: str, write: bool, fmt: str, limit: int, local: bool, **kwargs: Any) -> None:
    """Run one SQL statement on fazt's database: read-only unless --write. ATTACH, transaction
    control and PRAGMAs that set anything are refused either way."""
    if local:
        try:
            result = _local_sql(query, write=write, limit=limit, data_dir=kwargs["data_dir"])
        except FaztError as exc:
            _fail(f"{exc.code}: {exc}")
            return
    else:
        result = _call(kwargs, "POST", "/api/sql",
                       json={"query": query, "write": write, "limit": limit})
    _print_sql(result, fmt)


def _local_sql(query: str, *, write: bool, limit: int, data_dir: str | None) -> dict[str, Any]:
    import time

    from fazt.storage import open_connection, resolve_key, run_statement

    config = load_config({"data_dir": data_dir})
    if not config.db_path.exists():
        _fail(f"no database at {config.db_path} (set --data-dir or FAZT_HOME)")
    key = resolve_key(data_dir=config.data_dir, env_key_hex=config.db_key,
                      db_path=config.db_path)
    conn = open_connection(config.db_path, key, busy_timeout_ms=config.storage_busy_timeout_ms,
                           readonly=not write)
    deadline = time.monotonic() + 60
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = run_statement(conn, query, write=write, max_rows=limit)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()
    return result.to_json()


def _print_sql(result: dict[str, Any], fmt: str) -> None:
    columns, rows = result["columns"], result["rows"]
    if fmt == "json":
        click.echo(json.dumps(result, ensure_ascii=False))
        return

    def cell(value: Any) -> str:
        if isinstance(value, dict) and "$bytes" in value:
            return f"<{value['$bytes']} bytes>"
        return "NULL" if value is None else str(value)

    if fmt == "csv":
        out = csv.writer(sys.stdout)
        out.writerow(columns)
        out.writerows([cell(v) for v in row] for row in rows)
    elif columns:
        table = Table()         # every cell a Text: a value is data, never rich markup
        for name in columns:
            table.add_column(Text(_printable(name)))
        for row in rows:
            table.add_row(*(Text(_printable(cell(v))) for v in row))
        console.print(table, highlight=False)
    if result.get("changes") is not None:
        err_console.print(f"{result['changes']} row{'' if result['changes'] == 1 else 's'} "
                          "changed", highlight=False)
    if result["truncated"]:
        err_console.print(f"(only the first {len(rows)} rows: pass --limit for more)",
                          highlight=False, markup=False)


# -- fazt backup -------------------------------------------------------------------------------


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data dir (default ./.fazt).")
def backup(path: Path, data_dir: str | None) -> None:
    """Write an online, consistent, encrypted copy of the database to PATH."""
    from fazt.storage import backup_database, resolve_key

    try:
        config = load_config({"data_dir": data_dir})
        if not config.db_path.exists():
            _fail(f"no database at {config.db_path} (set --data-dir or FAZT_HOME)")
        key = resolve_key(data_dir=config.data_dir, env_key_hex=config.db_key,
                          db_path=config.db_path)
        result = backup_database(db_path=config.db_path, key=key, dest=path)
    except FaztError as exc:
        _fail(str(exc))
        return
    console.print(f"backed up {config.db_path} to {result.path} ({_size(result.bytes)}, "
                  f"{result.duration_s:.2f} s); it opens with the same key")


if __name__ == "__main__":  # pragma: no cover
    main()
