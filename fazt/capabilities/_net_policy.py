"""The operator's side of the net capability: rules (where apps may go, how fast, what is
cached) and secrets (credentials fazt adds to requests; apps name them, never see them).

Both are read on every ``net.fetch``, so they live in memory: loaded at start, replaced after
each write commits. This store is the only writer of ``net_rules`` and ``net_secrets``.

Rules. ``fazt net allow ENTRY [--app APP]``: a rule for one app or (no app) for every app. An
entry is written as a manifest's ``net.allow`` entries are (``api.github.com`` is https on
443, ``http://example.org:8080``, ``*.example.com``). An app with no rule may reach whatever
its manifest allows; once a rule applies to it, a call must match an entry of the manifest
and a rule (the manifest's request intersected with the operator's policy). An app without a
manifest list (written for the Go fazt) may reach what the rules allow, and nothing without
one. The rule that decides a call's rate limit and caching is the app's own before a rule for
every app, an exact host before a wildcard, a longer wildcard before a shorter one.

Secrets. ``fazt secret set NAME [--app APP] --as bearer|header:NAME|query:NAME [--domain ENTRY]``:
an app's own secret of a name shadows one for every app. ``--domain`` binds a secret to an
entry (the manifest's grammar: ``api.github.com`` is https on 443 only): it is only ever sent
to what the entry matches, on any hop. A secret for every app must be bound (else any app could
name it and send it to a host of its own); an app's own secret without a binding goes only to
the origin the call names (never along a redirect to another origin, never over plain http
after https).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from fazt.capabilities._allow import AllowEntry, BadPattern, parse_allow_entry
from fazt.capabilities._manifest import ENV_NAME
from fazt.egress import REFUSED_HEADERS, Target
from fazt.errors import AppNotFound, BadRequest, NotFound, PayloadTooLarge
from fazt.storage import Database

MAX_SECRET_BYTES = 8192
MAX_RULES = 1000
MAX_SECRETS = 1000
MAX_RATE_PER_S = 100_000.0
MAX_BURST = 1_000_000
MAX_CACHE_TTL_S = 86_400 * 30
INJECT = ("bearer", "header", "query")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")       # visible ASCII and space: no CR, LF, NUL


@dataclass(frozen=True, kw_only=True)
class NetRule:
    app: str | None                 # None: every app
    entry: AllowEntry
    rate_per_s: float | None = None
    burst: int | None = None
    cache_ttl_s: int | None = None
    created_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "domain": self.entry.canonical, "rate_per_s": self.rate_per_s,
                "burst": self.burst, "cache_ttl_s": self.cache_ttl_s,
                "created_at": self.created_at}


@dataclass(frozen=True, kw_only=True)
class Secret:
    app: str | None
    name: str
    value: str = field(repr=False)
    inject: str                     # bearer, header or query
    param: str | None = None        # the header's or query parameter's name
    domain: AllowEntry | None = None     # None: the origin each call names (an app's own)
    updated_at: str = ""

    @property
    def shown_as(self) -> str:
        return self.inject if self.param is None else f"{self.inject}:{self.param}"

    def masked(self) -> str:
        """Enough to tell two values apart, not enough to use: the last 4 characters of a
        value of 16 or more."""
        tail = self.value[-4:] if len(self.value) >= 16 else ""
        count = len(self.value)
        return f"****{tail} ({count} character{'' if count == 1 else 's'})"

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "name": self.name, "as": self.shown_as,
                "domain": None if self.domain is None else self.domain.canonical,
                "value": self.masked(), "updated_at": self.updated_at}


@dataclass(frozen=True)
class _State:
    seq: int
    rules: tuple[NetRule, ...]
    secrets: tuple[Secret, ...]


class NetPolicy:
    def __init__(self, db: Database, *, op_timeout_s: float) -> None:
        self._db = db
        self._op_timeout_s = op_timeout_s
        self._state = _State(0, (), ())
        self._seq = 0

    async def load(self) -> None:
        self._state = await self._db.read(self._read_all, deadline=self._deadline())

    # -- reading (from memory) ---------------------------------------------------------------

    def rules(self, app: str | None = None) -> tuple[NetRule, ...]:
        """Every rule (app None), or the rules that apply to ``app``: its own and global ones."""
        if app is None:
            return self._state.rules
        return tuple(r for r in self._state.rules if r.app in (None, app))

    def restricts(self, app: str) -> bool:
        return any(r.app in (None, app) for r in self._state.rules)

    def rule_for(self, app: str, target: Target) -> NetRule | None:
        """The rule that decides a call to ``target`` for ``app`` (see the module docstring),
        or None when no rule matches it."""
        best: tuple[int, int, int] | None = None
        chosen = None
        for rule in self._state.rules:
            if rule.app not in (None, app) or not rule.entry.matches(target):
                continue
            pattern = rule.entry.pattern
            rank = (rule.app is not None, not pattern.wildcard, len(pattern.host))
            if best is None or rank > best:
                best, chosen = rank, rule
        return chosen

    def secret(self, app: str, name: str) -> Secret | None:
        found = None
        for secret in self._state.secrets:
            if secret.name == name and secret.app in (None, app):
                if secret.app == app:
                    return secret
                found = secret
        return found

    def secrets(self) -> tuple[Secret, ...]:
        return self._state.secrets

    # -- rules -------------------------------------------------------------------------------

    async def allow(self, domain: object, *, app: str | None = None,
                    rate_per_s: float | None = None, burst: int | None = None,
                    cache_ttl_s: int | None = None) -> NetRule:
        """Add a rule, or replace the one for the same app and entry."""
        entry = _entry(domain)
        if rate_per_s is not None and (isinstance(rate_per_s, bool)
                                       or not isinstance(rate_per_s, (int, float))
                                       or not 0 <= rate_per_s <= MAX_RATE_PER_S):
            raise BadRequest(f"rate_per_s must be a number from 0 (no limit) to "
                             f"{MAX_RATE_PER_S:g}, got {rate_per_s!r}")
        _whole("burst", burst, 1, MAX_BURST)
        _whole("cache_ttl_s", cache_ttl_s, 0, MAX_CACHE_TTL_S)
        rule = NetRule(app=app, entry=entry,
                       rate_per_s=None if rate_per_s is None else float(rate_per_s),
                       burst=burst, cache_ttl_s=cache_ttl_s or None, created_at=_now())

        def write(conn: Any) -> _State:
            _require_app(conn, app)
            conn.execute("DELETE FROM net_rules WHERE ifnull(app, '') = ? AND domain = ?",
                         (app or "", entry.canonical))
            conn.execute("INSERT INTO net_rules (app, domain, rate_per_s, burst, cache_ttl_s, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (app, entry.canonical, rule.rate_per_s, burst, rule.cache_ttl_s,
                          rule.created_at))
            if conn.execute("SELECT count(*) FROM net_rules").fetchone()[0] > MAX_RULES:
                raise BadRequest(f"there can be at most {MAX_RULES} net rules")
            return self._read_all(conn)

        await self._write(write)
        return rule

    async def remove(self, domain: object, *, app: str | None = None) -> str:
        """Remove a rule; returns its entry's shortest form."""
        entry = _entry(domain)

        def write(conn: Any) -> _State:
            gone = conn.execute("DELETE FROM net_rules WHERE ifnull(app, '') = ? AND domain = ? "
                                "RETURNING 1", (app or "", entry.canonical)).fetchall()
            if not gone:
                raise NotFound(f"no net rule for {entry.canonical}"
                               + (f" and app {app!r}" if app else " for every app"))
            return self._read_all(conn)

        await self._write(write)
        return entry.canonical

    # -- secrets -----------------------------------------------------------------------------

    async def set_secret(self, name: object, value: object, *, inject: str, app: str | None = None,
                         domain: str | None = None) -> Secret:
        """Store (or replace) a secret. ``inject`` is ``bearer``, ``header:NAME`` or
        ``query:NAME``."""
        name = _secret_name(name)
        kind, _, param = inject.partition(":") if isinstance(inject, str) else ("", "", "")
        if kind not in INJECT or (kind == "bearer") != (param == ""):
            raise BadRequest(f"--as must be bearer, header:NAME or query:NAME, got {inject!r}")
        if kind == "header" and (not _TOKEN.fullmatch(param) or param.lower() in REFUSED_HEADERS):
            raise BadRequest(f"{param!r} cannot carry a secret: give a header name such as "
                             "X-Api-Key (not one fazt sets itself)")
        if kind == "query" and not _TOKEN.fullmatch(param):
            raise BadRequest(f"{param!r} is not a usable query parameter name")
        if not isinstance(value, str) or not value:
            raise BadRequest("the secret's value must be a non-empty string")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_SECRET_BYTES:
            raise PayloadTooLarge(f"the secret's value is over {MAX_SECRET_BYTES} bytes")
        if kind != "query" and (not _HEADER_SAFE.fullmatch(value) or value != value.strip()):
            raise BadRequest("a secret sent in a header must be visible ASCII text (no line "
                             "breaks, control or non-ASCII characters, and no leading or "
                             "trailing space)")
        if kind == "query" and any(c in value for c in "\x00\r\n"):
            raise BadRequest("the secret's value has a control character (a line break?)")
        bound = None if domain is None else _entry(domain)
        if app is None and bound is None:
            raise BadRequest("a secret for every app must be bound to where it may go (--domain "
                             "api.example.com): else any app could send it to a host of its "
                             "choosing. Or give --app.")
        secret = Secret(app=app, name=name, value=value, inject=kind, param=param or None,
                        domain=bound, updated_at=_now())

        def write(conn: Any) -> _State:
            _require_app(conn, app)
            conn.execute("DELETE FROM net_secrets WHERE ifnull(app, '') = ? AND name = ?",
                         (app or "", name))
            conn.execute("INSERT INTO net_secrets (app, name, value, inject, param, domain, "
                         "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (app, name, value, kind, param or None,
                          None if bound is None else bound.canonical, secret.updated_at))
            if conn.execute("SELECT count(*) FROM net_secrets").fetchone()[0] > MAX_SECRETS:
                raise BadRequest(f"there can be at most {MAX_SECRETS} secrets")
            return self._read_all(conn)

        await self._write(write)
        return secret

    async def remove_secret(self, name: object, *, app: str | None = None) -> None:
        name = _secret_name(name)

        def write(conn: Any) -> _State:
            gone = conn.execute("DELETE FROM net_secrets WHERE ifnull(app, '') = ? AND name = ? "
                                "RETURNING 1", (app or "", name)).fetchall()
            if not gone:
                raise NotFound(f"no secret {name}" + (f" for app {app!r}" if app
                                                      else " for every app"))
            return self._read_all(conn)

        await self._write(write)

    def forget(self, app: str) -> None:
        """The app was removed (its rows went with it)."""
        state = self._state
        self._state = _State(state.seq, tuple(r for r in state.rules if r.app != app),
                             tuple(s for s in state.secrets if s.app != app))

    # -- internals ---------------------------------------------------------------------------

    def _read_all(self, conn: Any) -> _State:
        rules = tuple(
            NetRule(app=app, entry=parse_allow_entry(domain), rate_per_s=rate, burst=burst,
                    cache_ttl_s=ttl, created_at=created)
            for app, domain, rate, burst, ttl, created in conn.execute(
                "SELECT app, domain, rate_per_s, burst, cache_ttl_s, created_at FROM net_rules "
                "ORDER BY ifnull(app, ''), domain"))
        secrets = tuple(
            Secret(app=app, name=name, value=value, inject=inject, param=param,
                   domain=None if domain is None else parse_allow_entry(domain),
                   updated_at=updated)
            for app, name, value, inject, param, domain, updated in conn.execute(
                "SELECT app, name, value, inject, param, domain, updated_at FROM net_secrets "
                "ORDER BY ifnull(app, ''), name"))
        self._seq += 1
        return _State(self._seq, rules, secrets)

    async def _write(self, fn: Callable[[Any], _State]) -> None:
        state = await self._db.write(fn, deadline=self._deadline())
        if state.seq > self._state.seq:     # two writes: the later transaction's view wins
            self._state = state

    def _deadline(self) -> float:
        return trio.current_time() + self._op_timeout_s


def _entry(text: object) -> AllowEntry:
    try:
        return parse_allow_entry(text)
    except BadPattern as exc:
        raise BadRequest(f"{str(text)[:100]!r} {exc}") from None


def _secret_name(name: object) -> str:
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise BadRequest(f"invalid secret name {str(name)[:64]!r}: use A-Z, 0-9 and _ (not "
                         "starting with a digit, at most 64 characters)")
    return name


def _whole(name: str, value: object, low: int, high: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not low <= value <= high):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def _require_app(conn: Any, app: str | None) -> None:
    if app is not None and conn.execute("SELECT 1 FROM apps WHERE name = ?",
                                        (app,)).fetchone() is None:
        raise AppNotFound(f"no app named {app!r}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

