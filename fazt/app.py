"""The one module that wires fazt together.

    Supervisor
    ├── storage   open the encrypted database, migrate, start the writer and readers
    ├── applog    the apps' log lines, buffered and written in batches
    ├── sandbox   the JS worker pools (spares started here)
    ├── data      the capabilities: the operator's per-app settings (loaded into memory),
    │             kv (and its sweep of expired keys), net (its rules, secrets, call log and
    │             egress client)
    └── web       first-start bootstrap, then hypercorn serving the root ASGI app

Services start in that order, each ready before the next, and stop in reverse: on SIGINT or
SIGTERM the web service stops accepting and drains in-flight requests (bounded by
``shutdown_grace_s``), the JS workers are stopped, the last log lines are written, then
storage checkpoints and closes the database.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve as hypercorn_serve

from fazt import __version__
from fazt.applog import AppLogStore
from fazt.auth import TokenStore
from fazt.budget import BudgetPolicy
from fazt.capabilities import AppSettings, Capabilities, GrantLimits, NetLog, NetPolicy
from fazt.capabilities.blobs import BlobStore
from fazt.capabilities.docs import DocStore
from fazt.capabilities.kv import KvStore
from fazt.capabilities.net import NetLimits, NetProvider
from fazt.config import Config, test_hosts
from fazt.egress import Egress, EgressSettings, Resolver, StaticResolver, SystemResolver
from fazt.errors import ConfigError
from fazt.hosting import (
    ArchiveContents,
    ArchiveFile,
    ArchiveLimits,
    Hosting,
    Manifest,
    collect_files,
)
from fazt.http import (
    AdminContext,
    ApiGateway,
    ApiLimits,
    RootApp,
    SendGuard,
    create_admin_app,
    install_send_guard,
)
from fazt.nursery import RestartPolicy, ServiceCrashed, Supervisor
from fazt.sandbox import Sandbox, SandboxSettings
from fazt.storage import Chaos, Database, StorageSettings, lock_data_dir, resolve_key

log = logging.getLogger("fazt")

EXAMPLE_APP = "hello"
EXAMPLE_DIR = Path(__file__).parent / "examples" / "hello"


@dataclass(frozen=True, kw_only=True)
class Started:
    """What `fazt run` prints once the server is ready."""

    binds: list[str]
    admin_token: str | None       # set only when a new token was just created
    example_deployed: bool
    fresh_database: bool


class StorageService:
    name = "storage"
    restart = RestartPolicy(mode="fatal")

    def __init__(self, config: Config) -> None:
        self._config = config
        self.db: Database | None = None
        self.fresh = False
        # the chaos seam, only when chaos is on (the config refuses it in production)
        self.chaos: Chaos | None = Chaos() if config.chaos else None
        if config.chaos or config.test_user_header:
            log.warning("testing hooks are on (chaos=%s, test_user_header=%s): never expose "
                        "this server", config.chaos, config.test_user_header)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with lock_data_dir(self._config.data_dir):
            await self._run(task_status)

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        config = self._config
        self.fresh = not config.db_path.exists()
        settings = StorageSettings(
            path=config.db_path,
            key=resolve_key(data_dir=config.data_dir, env_key_hex=config.db_key,
                            db_path=config.db_path),
            readers=config.storage_readers,
            busy_timeout_ms=config.storage_busy_timeout_ms,
            batch_max=config.storage_batch_max,
            fault_hook=self.chaos,
        )
        db = await trio.to_thread.run_sync(Database.open, settings)
        self.db = db
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(db.close)
            log.info("database closed")


class AppLogService:
    name = "applog"
    restart = RestartPolicy(mode="fatal")

    def __init__(self, config: Config, storage: StorageService) -> None:
        self._config = config
        self._storage = storage
        self.store: AppLogStore | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self._storage.db is not None, "storage must start first"
        self.store = AppLogStore(self._storage.db,
                                 op_timeout_s=self._config.storage_op_timeout_s)
        await self.store.run(task_status=task_status)


class SandboxService:
    name = "sandbox"
    restart = RestartPolicy(mode="fatal")

    def __init__(self, config: Config, logs: AppLogService) -> None:
        self._config = config
        self._logs = logs
        self.sandbox: Sandbox | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        store = self._logs.store
        assert store is not None, "applog must start first"

        def sink(app: str, level: str, message: str, request_id: str | None) -> None:
            store.append(app, level, message, request_id=request_id)

        self.sandbox = Sandbox(sandbox_settings(self._config), log_sink=sink)
        await self.sandbox.run(task_status=task_status)


class DataService:
    """The capabilities' state: per-app settings, the kv, docs and blobs stores, the kv sweep."""

    name = "data"
    restart = RestartPolicy(mode="fatal")

    def __init__(self, config: Config, storage: StorageService,
                 sandbox: SandboxService) -> None:
        self._config = config
        self._storage = storage
        self._sandbox = sandbox
        self.capabilities: Capabilities | None = None
        self.docs: DocStore | None = None
        self.blobs: BlobStore | None = None
        self.net: NetProvider | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._config
        db, sandbox = self._storage.db, self._sandbox.sandbox
        assert db is not None and sandbox is not None, "storage and sandbox must start first"
        op_timeout_s = config.storage_op_timeout_s
        settings = AppSettings(db, op_timeout_s=op_timeout_s, on_change=sandbox.reload)
        await settings.load()
        kv = KvStore(db, max_value_bytes=config.kv_max_value_bytes)
        self.docs = DocStore(db, max_document_bytes=config.docs_max_document_bytes)
        secret = await BlobStore.load_secret(db, op_timeout_s=op_timeout_s)
        self.blobs = BlobStore(db, url_secret=secret, max_blob_bytes=config.blobs_max_bytes)
        policy = NetPolicy(db, op_timeout_s=op_timeout_s)
        await policy.load()
        egress = net_egress(config)
        self.net = NetProvider(egress, policy,
                               NetLog(db, op_timeout_s=op_timeout_s, keep=config.net_log_keep),
                               limits=net_limits(config))
        self.capabilities = Capabilities(
            [kv.provider(), self.docs.provider(), self.blobs.provider(), self.net.provider()],
            settings=settings,
            limits=GrantLimits(quota_mb_default=config.app_quota_mb,
                               quota_mb_max=config.app_quota_mb_max))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.net.log.run)
                task_status.started()
                await kv.sweep_forever(interval_s=config.kv_sweep_interval_s,
                                       op_timeout_s=op_timeout_s)
        finally:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 5):
                await egress.aclose()


def net_egress(config: Config) -> Egress:
    """The egress client: the system's resolver and CAs (plus ``net_ca_file``'s), or with
    ``net_test_hosts`` (a testing hook) those names answered from the table and let through
    the address guard."""
    context = ssl.create_default_context()
    if config.net_ca_file:
        try:
            context.load_verify_locations(cafile=config.net_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"net_ca_file: cannot load {config.net_ca_file}: {exc}") from exc
    settings = EgressSettings(max_request_bytes=config.net_max_request_bytes,
                              max_response_bytes=config.net_max_response_bytes,
                              max_redirects=config.net_max_redirects,
                              user_agent=f"fazt/{__version__}")
    if not config.net_test_hosts:
        return Egress(resolver=SystemResolver(), settings=settings, ssl_context=context)
    table = test_hosts(config.net_test_hosts)
    log.warning("net_test_hosts is on: %s reach local addresses; never expose this server",
                ", ".join(sorted(table)))
    return Egress(resolver=_TestResolver(table), settings=settings, ssl_context=context,
                  permit=lambda host, address: table.get(host) == str(address))


class _TestResolver:
    """``net_test_hosts``' names from the table; every other name from the system."""

    def __init__(self, table: dict[str, str]) -> None:
        self._table = StaticResolver({name: [address] for name, address in table.items()})
        self._names = set(table)
        self._system: Resolver = SystemResolver()

    async def resolve(self, host: str, port: int) -> list[Any]:
        if host in self._names:
            return await self._table.resolve(host, port)
        return await self._system.resolve(host, port)


def net_limits(config: Config) -> NetLimits:
    return NetLimits(max_calls=config.net_max_calls, max_concurrent=config.net_max_concurrent,
                     max_in_flight=config.net_max_in_flight,
                     max_in_flight_per_app=config.net_max_in_flight_per_app,
                     rate_per_s=config.net_rate_per_s,
                     burst=config.net_rate_burst, cache_bytes=config.net_cache_bytes)


def _sync_docs_indexes(conn: Any, app: str, manifest: Manifest | None) -> None:
    """Hosting's activation hook: the live deploy's docs indexes change with it."""
    DocStore.sync_indexes(conn, app, manifest.capabilities if manifest is not None else None)


class WebService:
    name = "web"
    restart = RestartPolicy(mode="fatal")

    def __init__(self, config: Config, storage: StorageService, logs: AppLogService,
                 sandbox: SandboxService, data: DataService) -> None:
        self._config = config
        self._storage = storage
        self._logs = logs
        self._sandbox = sandbox
        self._data = data
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self.started: Started | None = None
        self.send_guard = SendGuard(send_timeout_s=config.http_send_timeout_s)
        self.logs: AppLogStore | None = None    # set when run() starts

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._config
        db = self._storage.db
        assert db is not None, "storage must start first"
        hosting = Hosting(db, limits=archive_limits(config), history=config.deploy_history,
                          cache_bytes=config.static_cache_bytes,
                          op_timeout_s=config.storage_op_timeout_s,
                          deploy_timeout_s=config.deploy_timeout_s,
                          on_activate=_sync_docs_indexes)
        tokens = TokenStore(db, op_timeout_s=config.storage_op_timeout_s)
        logs = self.logs = self._logs.store
        sandbox = self._sandbox.sandbox
        capabilities = self._data.capabilities
        assert logs is not None and sandbox is not None and capabilities is not None, \
            "applog, sandbox and data must start first"
        api = ApiGateway(sandbox=sandbox, hosting=hosting, policy=budget_policy(config),
                         limits=ApiLimits(max_body_bytes=config.max_api_body_bytes,
                                          max_response_bytes=config.max_api_response_bytes,
                                          memory_mb_default=config.js_memory_mb,
                                          memory_mb_max=config.js_memory_mb_max),
                         capabilities=capabilities, test_users=config.test_user_header,
                         log_sink=lambda app, level, message, request_id: logs.append(
                             app, level, message, request_id=request_id))
        ctx = AdminContext(config=config, db=db, hosting=hosting, tokens=tokens, logs=logs,
                           capabilities=capabilities, started_at=time.monotonic(),
                           chaos=self._storage.chaos, net=self._data.net, sandbox=sandbox,
                           api=api)
        root = RootApp(domain=config.domain, admin=create_admin_app(ctx),  # type: ignore[arg-type]
                       hosting=hosting, api=api, blobs=self._data.blobs,
                       capabilities=capabilities, storage_timeout_s=config.storage_op_timeout_s)
        install_send_guard(self.send_guard)
        try:
            async with trio.open_nursery() as nursery:
                binds = await self._start_http(nursery, root)
                # Only once the port is ours: a start that fails to bind must not swallow the
                # token that is shown once, nor use up the example's first start.
                admin_token = await _ensure_admin_token(config, tokens)
                example = False
                if not await hosting.has_ever_deployed():
                    await hosting.deploy_contents(EXAMPLE_APP, _example_contents(),
                                                  source="example")
                    example = True
                self.started = Started(binds=binds, admin_token=admin_token,
                                       example_deployed=example,
                                       fresh_database=self._storage.fresh)
                task_status.started()
                await self._stopped.wait()
                await trio.sleep_forever()   # drained: wait for the supervisor to stop us
        finally:
            self._stopped.set()

    async def _start_http(self, nursery: trio.Nursery, root: RootApp) -> list[str]:
        try:
            binds: list[str] = await nursery.start(self._serve, root)
        except BaseExceptionGroup as group:  # translated at the boundary: the operator can act
            in_use, _ = group.split(lambda e: isinstance(e, OSError)
                                    and e.errno == errno.EADDRINUSE)
            if in_use is None:
                raise
            config = self._config
            raise ConfigError(f"{config.host}:{config.port} is already in use "
                              "(choose another --port)") from group
        return binds

    async def _serve(self, root: RootApp, *,
                     task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await hypercorn_serve(root, hypercorn_config(self._config),  # type: ignore[arg-type]
                                  shutdown_trigger=self._stop.wait,
                                  task_status=task_status)
        finally:
            self._stopped.set()

    async def drain(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded by shutdown_grace_s)."""
        self.send_guard.stop_all_by(trio.current_time() + self._config.shutdown_grace_s)
        if self.logs is not None:
            self.logs.release_waiters()   # long polls answer now instead of holding the drain
        self._stop.set()
        await self._stopped.wait()

    def stop_now(self) -> None:
        """Cut every connection's pending writes (a second signal)."""
        self.send_guard.stop_all_by(trio.current_time())


def archive_limits(config: Config) -> ArchiveLimits:
    return ArchiveLimits(max_deploy_bytes=config.max_deploy_bytes,
                         max_app_bytes=config.max_app_bytes, max_app_files=config.max_app_files,
                         max_file_bytes=config.max_file_bytes,
                         max_compression_ratio=config.max_compression_ratio,
                         # entries incl. directories and skipped junk (__MACOSX, dotfiles)
                         max_entries=max(50_000, 4 * config.max_app_files))


def budget_policy(config: Config) -> BudgetPolicy:
    return BudgetPolicy(request_s=config.budget_request_s, js_cap_s=config.budget_js_slice_s,
                        storage_cap_s=config.budget_storage_s, net_cap_s=config.budget_net_s,
                        respond_reserve_s=config.budget_respond_reserve_s)


def sandbox_settings(config: Config) -> SandboxSettings:
    return SandboxSettings(workers_per_app=config.js_workers_per_app,
                           worker_concurrency=config.js_worker_concurrency,
                           memory_mb_default=config.js_memory_mb,
                           memory_mb_max=config.js_memory_mb_max,
                           total_memory_mb=config.js_total_memory, spares=config.js_spares,
                           idle_s=config.js_idle_s, recycle_after=config.js_recycle_after,
                           kill_grace_s=config.js_kill_grace_s,
                           retire_timeout_s=config.budget_request_s + 10)


def hypercorn_config(config: Config) -> HyperConfig:
    """Hypercorn's settings, derived from ours in this one place."""
    hyper = HyperConfig()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    hyper.graceful_timeout = config.shutdown_grace_s
    hyper.accesslog = None
    hyper.errorlog = logging.getLogger("hypercorn.error")
    hyper.include_server_header = False
    hyper.keep_alive_timeout = 5
    return hyper


async def _ensure_admin_token(config: Config, tokens: TokenStore) -> str | None:
    """Create an admin token when the data dir has none; it is shown once and saved 0600."""
    if config.token_path.exists():
        return None
    _, secret = await tokens.create("admin")
    fd = os.open(config.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
    return secret


def _example_contents() -> ArchiveContents:
    files, _ = collect_files(EXAMPLE_DIR)
    return ArchiveContents(files=tuple(ArchiveFile(f.path, f.source.read_bytes())
                                       for f in files), skipped=())


async def serve(config: Config, *, on_ready: Callable[[Started], None]) -> None:
    """Run until SIGINT/SIGTERM; raises ServiceCrashed when a service dies.

    The first signal drains (bounded by ``shutdown_grace_s``); a second one stops at once.
    """
    storage = StorageService(config)
    logs = AppLogService(config, storage)
    sandbox = SandboxService(config, logs)
    data = DataService(config, storage, sandbox)
    web = WebService(config, storage, logs, sandbox, data)
    supervisor = Supervisor([storage, logs, sandbox, data, web],
                            stop_timeout_s=config.shutdown_grace_s + 5)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                assert web.started is not None
                # Startup's objects (modules, routes, registries) live as long as the
                # process: out of the collector's view, full collections under load no
                # longer walk them (30-55 ms each, about once a second, before).
                gc.collect()
                gc.freeze()
                on_ready(web.started)
                async for signum in signals:
                    log.info("received %s: draining (again to stop at once)",
                             signal.Signals(signum).name)
                    break
                with trio.move_on_after(config.shutdown_grace_s + 1):
                    async with trio.open_nursery() as draining:
                        draining.start_soon(_cancel_on_signal, signals, draining.cancel_scope)
                        await web.drain()
                        draining.cancel_scope.cancel(reason="drained")
                web.stop_now()
                supervisor.request_shutdown("signal")
    except BaseExceptionGroup as group:
        crashed, _ = group.split(ServiceCrashed)
        if crashed is None:
            raise
        raise _first_leaf(crashed)  # noqa: B904 - the leaf keeps its own __cause__


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.warning("received %s again: stopping without waiting", signal.Signals(signum).name)
        scope.cancel(reason="second signal")
        return


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


__all__ = ["Started", "archive_limits", "hypercorn_config", "serve"]
