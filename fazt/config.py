"""The one configuration object.

Sources, strongest first: command-line flags > ``FAZT_*`` environment variables > ``fazt.toml``
in the data dir > defaults. The data dir itself comes from ``--data-dir`` > ``FAZT_HOME`` >
``./.fazt`` (it cannot come from the file that lives inside it).

Every field is documented in ``docs/reference/settings.md``; a test fails when one is not.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fazt.errors import ConfigError

MIB = 2**20
CONFIG_FILE = "fazt.toml"
ENV_PREFIX = "FAZT_"
DATA_DIR_ENV = "FAZT_HOME"
_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}


def _setting(default: Any, *, low: float | None = None, high: float | None = None,
             choices: tuple[str, ...] | None = None, from_file: bool = True) -> Any:
    return field(default=default, metadata={"low": low, "high": high, "choices": choices,
                                            "from_file": from_file})


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every setting of a fazt server; frozen once loaded."""

    data_dir: Path = field(default=Path(".fazt"), metadata={"from_file": False})
    host: str = _setting("127.0.0.1")
    port: int = _setting(8080, low=0, high=65535)
    domain: str = _setting("localhost")
    db_key: str | None = field(default=None, repr=False, metadata={"from_file": False})
    log_level: str = _setting("info", choices=("debug", "info", "warning", "error"))
    shutdown_grace_s: float = _setting(10.0, low=0, high=600)
    http_send_timeout_s: float = _setting(30.0, low=0.1, high=3600)
    storage_readers: int = _setting(4, low=1, high=64)
    storage_busy_timeout_ms: int = _setting(3000, low=0, high=60_000)
    storage_batch_max: int = _setting(256, low=1, high=10_000)
    storage_op_timeout_s: float = _setting(3.0, low=0.01, high=600)
    deploy_timeout_s: float = _setting(60.0, low=1, high=3600)
    deploy_history: int = _setting(10, low=1, high=1000)
    max_deploy_bytes: int = _setting(100 * MIB, low=1024)
    max_app_bytes: int = _setting(200 * MIB, low=1024)
    max_app_files: int = _setting(10_000, low=1)
    max_file_bytes: int = _setting(50 * MIB, low=1)
    max_compression_ratio: float = _setting(200.0, low=1)
    max_api_body_bytes: int = _setting(1 * MIB, low=1024, high=32 * MIB)
    static_cache_bytes: int = _setting(64 * MIB, low=0)
    max_api_response_bytes: int = _setting(10 * MIB, low=1024, high=48 * MIB)
    budget_request_s: float = _setting(10.0, low=0.05, high=600)
    budget_js_slice_s: float = _setting(5.0, low=0.01, high=600)
    budget_storage_s: float = _setting(3.0, low=0.01, high=600)
    budget_net_s: float = _setting(4.0, low=0.01, high=600)
    budget_respond_reserve_s: float = _setting(0.1, low=0.0, high=10)
    js_workers_per_app: int = _setting(2, low=1, high=64)
    js_worker_concurrency: int = _setting(16, low=1, high=1000)
    js_memory_mb: int = _setting(128, low=64, high=16_384)
    js_memory_mb_max: int = _setting(512, low=64, high=16_384)
    js_total_memory_mb: int = _setting(0, low=0)
    js_spares: int = _setting(1, low=0, high=16)
    js_idle_s: float = _setting(300.0, low=1, high=86_400)
    js_recycle_after: int = _setting(10_000, low=1)
    js_kill_grace_s: float = _setting(0.25, low=0.01, high=10)
    app_quota_mb: int = _setting(100, low=1, high=1_048_576)
    app_quota_mb_max: int = _setting(1024, low=1, high=1_048_576)
    kv_max_value_bytes: int = _setting(1 * MIB, low=1024, high=16 * MIB)
    kv_sweep_interval_s: float = _setting(60.0, low=0.05, high=86_400)
    production: bool = _setting(False)
    chaos: bool = _setting(False)
    test_user_header: bool = _setting(False)
    docs_max_document_bytes: int = _setting(1 * MIB, low=1024, high=16 * MIB)
    blobs_max_bytes: int = _setting(4 * MIB, low=1024, high=64 * MIB)
    net_max_calls: int = _setting(10, low=1, high=1000)
    net_max_concurrent: int = _setting(6, low=1, high=100)
    net_max_in_flight: int = _setting(100, low=1, high=10_000)
    net_max_in_flight_per_app: int = _setting(30, low=1, high=10_000)
    net_max_request_bytes: int = _setting(1 * MIB, low=1024, high=64 * MIB)
    net_max_response_bytes: int = _setting(1 * MIB, low=1024, high=64 * MIB)
    net_max_redirects: int = _setting(5, low=0, high=5)
    net_rate_per_s: float = _setting(20.0, low=0, high=100_000)
    net_rate_burst: int = _setting(40, low=1, high=1_000_000)
    net_cache_bytes: int = _setting(8 * MIB, low=0, high=1024 * MIB)
    net_log_keep: int = _setting(10_000, low=100, high=10_000_000)
    net_ca_file: str = _setting("")
    net_test_hosts: str = _setting("")

    @property
    def js_total_memory(self) -> int:
        """The JS workers' memory bound in MB (``js_total_memory_mb``; 0 = half of RAM)."""
        if self.js_total_memory_mb:
            return self.js_total_memory_mb
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return max(self.js_memory_mb_max, physical // 2 // MIB)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "fazt.db"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "db.key"

    @property
    def token_path(self) -> Path:
        return self.data_dir / "admin.token"

    @property
    def base_url(self) -> str:
        """Where a local client reaches this server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def public_url(self, app: str | None = None) -> str:
        """The URL a browser uses for an app (or the admin API when app is None)."""
        port = "" if self.port == 80 else f":{self.port}"
        if app is None:
            return f"http://{self.domain}{port}/api/"
        return f"http://{app}.{self.domain}{port}/"


def test_hosts(text: str) -> dict[str, str]:
    """``net_test_hosts``: "name=address,name=address" -> {name: address}."""
    table: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("=")
        try:
            ipaddress.ip_address(address.strip())
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"net_test_hosts: {item!r} is not name=address")
        table[name.strip().lower()] = address.strip()
    return table


def settings() -> tuple[dataclasses.Field[Any], ...]:
    """The documented settings, in declaration order."""
    return dataclasses.fields(Config)


def env_name(name: str) -> str:
    return "FAZT_HOME" if name == "data_dir" else ENV_PREFIX + name.upper()


def load_config(flags: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from flags (None values mean "not given"), environment and file."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in settings()}
    unknown_flags = set(flags) - set(known)
    if unknown_flags:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown_flags))}")

    data_dir = Path(flags.get("data_dir") or environ.get(DATA_DIR_ENV) or ".fazt")
    values: dict[str, Any] = {"data_dir": data_dir}
    for name, value in _read_file(data_dir / CONFIG_FILE, known).items():
        values[name] = _coerce(known[name], value, f"{CONFIG_FILE}: {name}")
    for name, fld in known.items():
        if name == "data_dir":
            continue
        raw = environ.get(env_name(name))
        if raw is not None and raw != "":
            values[name] = _coerce(fld, raw, env_name(name))
    for name, value in flags.items():
        if name != "data_dir":
            values[name] = _coerce(known[name], value, f"--{name.replace('_', '-')}")
    config = Config(**values)
    _check_consistency(config)
    return config


def _read_file(path: Path, known: Mapping[str, dataclasses.Field[Any]]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for name in data:
        fld = known.get(name)
        if fld is None:
            raise ConfigError(f"{path}: unknown setting {name!r}")
        if not fld.metadata.get("from_file", True):
            raise ConfigError(f"{path}: {name!r} cannot be set in {CONFIG_FILE}; "
                              f"use {env_name(name)}")
    return data


def _coerce(fld: dataclasses.Field[Any], value: Any, source: str) -> Any:
    kind = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", "")
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out: Any = int(value)
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
        elif kind == "bool":
            if isinstance(value, str) and value.strip().lower() in _BOOLS:
                value = _BOOLS[value.strip().lower()]
            if not isinstance(value, bool):
                raise ValueError
            out = value
        elif kind == "Path":
            out = Path(value)
        else:
            if not isinstance(value, str):
                raise ValueError
            out = value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: expected {kind.split(' ')[0]}, got {value!r}") from exc
    low, high, choices = (fld.metadata.get(k) for k in ("low", "high", "choices"))
    if low is not None and out < low:
        raise ConfigError(f"{source}: must be at least {low}, got {out}")
    if high is not None and out > high:
        raise ConfigError(f"{source}: must be at most {high}, got {out}")
    if choices and out not in choices:
        raise ConfigError(f"{source}: must be one of {', '.join(choices)}, got {out!r}")
    return out


def _check_consistency(config: Config) -> None:
    domain = config.domain
    if not domain or domain != domain.lower() or domain.startswith(".") or "/" in domain \
            or ":" in domain or " " in domain:
        raise ConfigError(f"domain: {domain!r} is not a lowercase host name (e.g. example.com)")
    if config.js_memory_mb > config.js_memory_mb_max:
        raise ConfigError("js_memory_mb cannot exceed js_memory_mb_max")
    if config.js_total_memory_mb and config.js_total_memory_mb < config.js_memory_mb_max:
        raise ConfigError("js_total_memory_mb must be 0 (half of RAM) or at least "
                          "js_memory_mb_max")
    if config.budget_respond_reserve_s >= config.budget_request_s:
        raise ConfigError("budget_respond_reserve_s must be less than budget_request_s")
    if config.app_quota_mb > config.app_quota_mb_max:
        raise ConfigError("app_quota_mb cannot exceed app_quota_mb_max")
    if config.net_test_hosts:
        test_hosts(config.net_test_hosts)     # refused here, at start, when malformed
    if config.max_file_bytes > config.max_app_bytes:
        raise ConfigError("max_file_bytes cannot exceed max_app_bytes")
    if config.production:
        for hook in ("chaos", "test_user_header", "net_test_hosts"):
            if getattr(config, hook):
                raise ConfigError(f"{hook} is a testing hook: it cannot be on in production "
                                  "(production = true)")
