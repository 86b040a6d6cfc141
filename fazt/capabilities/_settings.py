"""The operator's per-app settings: the capability policy and env values.

Both are read on every API request (to build the app's grant), so they live in memory: loaded
once at start, updated after each write commits. Every write goes through this store, which
is the only writer of ``app_policy`` and ``app_env``. A write returns the app's rows as its
own transaction left them, stamped with a sequence number, so two concurrent writes cannot
leave the cache on the older state.

Changing either calls ``on_change(app)``: the sandbox reloads the app's JS workers, whose
``caps`` object was built from the old grant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import trio

from fazt.capabilities._manifest import ENV_NAME, KNOWN, MAX_QUOTA_MB, WITH_QUOTA
from fazt.errors import AppNotFound, BadRequest, PayloadTooLarge
from fazt.storage import Database

MAX_ENV_VALUE_BYTES = 4096
MAX_ENV_PER_APP = 100


@dataclass(frozen=True)
class Policy:
    """What the operator withholds from an app, and the quotas they lowered (MB)."""

    withheld: frozenset[str] = frozenset()
    quota_mb: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"withheld": sorted(self.withheld), "quota_mb": dict(sorted(self.quota_mb.items()))}


NO_POLICY = Policy()
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class _AppRows:
    seq: int
    policy: Policy
    env: Mapping[str, str]


class AppSettings:
    def __init__(self, db: Database, *, op_timeout_s: float,
                 on_change: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._op_timeout_s = op_timeout_s
        self._on_change = on_change
        self._apps: dict[str, _AppRows] = {}
        self._seq = itertools.count(1)

    async def load(self) -> None:
        """Read every app's settings (at start, before the first request)."""
        def read(conn: Any) -> dict[str, _AppRows]:
            apps: dict[str, Any] = {}
            for app in {r[0] for r in conn.execute("SELECT app FROM app_policy UNION "
                                                   "SELECT app FROM app_env")}:
                apps[app] = self._rows(conn, app)
            return apps

        self._apps = await self._db.read(read, deadline=self._deadline())

    def policy(self, app: str) -> Policy:
        rows = self._apps.get(app)
        return NO_POLICY if rows is None else rows.policy

    def env(self, app: str) -> Mapping[str, str]:
        rows = self._apps.get(app)
        return _EMPTY if rows is None else rows.env

    async def usage(self, app: str) -> dict[str, int]:
        """Bytes the app stores per capability (what its quotas are checked against)."""
        def read(conn: Any) -> dict[str, int]:
            return {name: int(n) for name, n in conn.execute(
                "SELECT capability, bytes FROM app_usage WHERE app = ?", (app,))}

        return await self._db.read(read, deadline=self._deadline())

    def forget(self, app: str) -> None:
        """The app was removed (its rows went with it)."""
        if self._apps.pop(app, None) is not None and self._on_change is not None:
            self._on_change(app)

    # -- policy ------------------------------------------------------------------------------

    async def set_policy(self, app: str, *, withhold: Iterable[str] = (),
                         allow: Iterable[str] = (),
                         quota_mb: Mapping[str, int | None] | None = None,
                         reset: bool = False) -> Policy:
        """Withhold or allow capabilities, lower (or with None, restore) quotas; ``reset``
        first drops the app's whole policy. Returns the policy now in force."""
        withhold, allow = list(withhold), list(allow)
        quota_mb = dict(quota_mb or {})
        for name in [*withhold, *allow, *quota_mb]:
            if name not in KNOWN:
                raise BadRequest(f"unknown capability {name!r} (known: {', '.join(sorted(KNOWN))})")
        no_quota = sorted(set(quota_mb) - WITH_QUOTA)
        if no_quota:
            raise BadRequest(f"{no_quota[0]} has no quota (quotas: "
                             f"{', '.join(sorted(WITH_QUOTA))})")
        both = set(withhold) & set(allow)
        if both:
            raise BadRequest(f"{sorted(both)[0]!r} cannot be both withheld and allowed")
        for name, mb in quota_mb.items():
            if mb is not None and (isinstance(mb, bool) or not isinstance(mb, int)
                                   or not 1 <= mb <= MAX_QUOTA_MB):
                raise BadRequest(f"the quota for {name} must be an integer from 1 to "
                                 f"{MAX_QUOTA_MB} (MB), got {mb!r}")

        def write(conn: Any) -> _AppRows:
            _require_app(conn, app)
            if reset:
                conn.execute("DELETE FROM app_policy WHERE app = ?", (app,))
            for name in withhold:
                conn.execute("INSERT INTO app_policy (app, capability, withheld) VALUES (?, ?, 1)"
                             " ON CONFLICT DO UPDATE SET withheld = 1", (app, name))
            for name in allow:
                conn.execute("UPDATE app_policy SET withheld = 0 WHERE app = ? AND capability = ?",
                             (app, name))
            for name, mb in quota_mb.items():
                conn.execute("INSERT INTO app_policy (app, capability, quota_mb) VALUES (?, ?, ?)"
                             " ON CONFLICT DO UPDATE SET quota_mb = excluded.quota_mb",
                             (app, name, mb))
            conn.execute("DELETE FROM app_policy WHERE app = ? AND withheld = 0 AND "
                         "quota_mb IS NULL", (app,))
            return self._rows(conn, app)

        return (await self._write(app, write)).policy

    # -- env ---------------------------------------------------------------------------------

    async def update_env(self, app: str, *, set_values: Mapping[str, str] | None = None,
                         unset: Iterable[str] = ()) -> Mapping[str, str]:
        """Set and unset env values in one transaction (all or nothing); names to unset that
        are not set are ignored. Returns the app's env now."""
        set_values = dict(set_values or {})
        unset = list(unset)
        if not set_values and not unset:
            raise BadRequest("give at least one NAME=VALUE to set or NAME to unset")
        for name in [*set_values, *unset]:
            check_env_name(name)
        both = set(set_values) & set(unset)
        if both:
            raise BadRequest(f"{sorted(both)[0]} cannot be both set and unset")
        for name, value in set_values.items():
            if not isinstance(value, str):
                raise BadRequest(f"the value of {name} must be a string")
            try:
                size = len(value.encode("utf-8"))
            except UnicodeEncodeError as exc:
                raise BadRequest(f"the value of {name} is not valid text") from exc
            if size > MAX_ENV_VALUE_BYTES:
                raise PayloadTooLarge(f"the value of {name} is over {MAX_ENV_VALUE_BYTES} bytes")
            if "\x00" in value:
                raise BadRequest(f"the value of {name} contains a NUL character")
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

        def write(conn: Any) -> _AppRows:
            _require_app(conn, app)
            conn.executemany("DELETE FROM app_env WHERE app = ? AND name = ?",
                             [(app, n) for n in unset])
            conn.executemany("INSERT INTO app_env (app, name, value, updated_at) VALUES "
                             "(?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value, "
                             "updated_at = excluded.updated_at",
                             [(app, n, v, now) for n, v in set_values.items()])
            count = conn.execute("SELECT count(*) FROM app_env WHERE app = ?", (app,)).fetchone()
            if count[0] > MAX_ENV_PER_APP:
                raise BadRequest(f"an app can have at most {MAX_ENV_PER_APP} env settings")
            return self._rows(conn, app)

        return (await self._write(app, write)).env

    # -- internals ---------------------------------------------------------------------------

    def _rows(self, conn: Any, app: str) -> _AppRows:
        withheld, quotas = set(), {}
        for name, held, mb in conn.execute(
                "SELECT capability, withheld, quota_mb FROM app_policy WHERE app = ?", (app,)):
            if held:
                withheld.add(name)
            if mb is not None:
                quotas[name] = mb
        env = dict(conn.execute("SELECT name, value FROM app_env WHERE app = ? ORDER BY name",
                                (app,)).fetchall())
        return _AppRows(seq=next(self._seq), policy=Policy(frozenset(withheld), quotas),
                        env=MappingProxyType(env))

    async def _write(self, app: str, fn: Callable[[Any], _AppRows]) -> _AppRows:
        rows = await self._db.write(fn, deadline=self._deadline())
        current = self._apps.get(app)
        if current is None or current.seq < rows.seq:
            self._apps[app] = rows
            if self._on_change is not None:
                self._on_change(app)
        return rows

    def _deadline(self) -> float:
        return trio.current_time() + self._op_timeout_s


def check_env_name(name: str) -> None:
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        raise BadRequest(f"invalid env name {str(name)[:64]!r}: use A-Z, 0-9 and _ (not "
                         "starting with a digit, at most 64 characters)")


def _require_app(conn: Any, app: str) -> None:
    if conn.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone() is None:
        raise AppNotFound(f"no app named {app!r}")
