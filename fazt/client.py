"""The admin API client the CLI uses.

The server and token come from flags, then ``FAZT_URL`` / ``FAZT_TOKEN``, then the local data dir
(``admin.token`` and the address in the local config).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from fazt.config import load_config


class ClientError(Exception):
    """An API call failed; ``code`` is the server's error code (or a local one)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None
    token_hint: str = "pass --token or set FAZT_TOKEN"  # noqa: S105 (help text)


def resolve_target(*, url: str | None, token: str | None, data_dir: str | None) -> Target:
    """Where to send API calls, and with which token.

    The local data dir's token is only ever sent to a server on this machine: with a remote
    ``--url`` / ``FAZT_URL`` the token must be given too.
    """
    url = url or os.environ.get("FAZT_URL")
    token = token or os.environ.get("FAZT_TOKEN")
    hint = "pass --token or set FAZT_TOKEN"
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise ClientError("bad_url", f"the server URL must start with http:// or https://, "
                          f"got {url!r}")
    if url is None or token is None:
        config = load_config({"data_dir": data_dir})
        from_config = url is None      # the local server's own address is local by construction
        url = url or config.base_url
        if token is None and (from_config or _is_local(url)):
            token = _read_token(config.token_path)
            hint = (f"no token in {config.token_path}: run where the server's data dir is, "
                    "pass --data-dir (or set FAZT_HOME), or pass --token / set FAZT_TOKEN")
        elif token is None:
            hint = ("the local data dir's token is only sent to a server on this machine: "
                    "pass --token or set FAZT_TOKEN")
    return Target(url=url.rstrip("/"), token=token, token_hint=hint)


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


class AdminClient:
    def __init__(self, target: Target, *, timeout_s: float = 120.0) -> None:
        headers = {"user-agent": "fazt-cli"}
        if target.token:
            headers["authorization"] = f"Bearer {target.token}"
        self.target = target
        self._http = httpx.Client(base_url=target.url, headers=headers, timeout=timeout_s,
                                  trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None,
                content: bytes | Iterator[bytes] | None = None,
                headers: dict[str, str] | None = None) -> Any:
        if not self.target.token:
            raise ClientError("no_token", f"no admin token: {self.target.token_hint}")
        try:
            response = self._http.request(method, path, json=json, content=content,
                                          headers=headers)
        except httpx.ConnectError as exc:
            raise ClientError("unreachable", f"cannot reach fazt at {self.target.url}: is "
                              "`fazt run` running? (set --url or FAZT_URL)") from exc
        except httpx.TimeoutException as exc:
            raise ClientError("timeout", f"fazt at {self.target.url} did not answer in time") \
                from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_error:
            error = (data or {}).get("error") if isinstance(data, dict) else None
            if isinstance(error, dict):
                message = str(error.get("message"))
                if response.status_code == 401:
                    message += f" (server {self.target.url})"
                raise ClientError(str(error.get("code")), message, response.status_code)
            raise ClientError("http_error", f"HTTP {response.status_code}", response.status_code)
        return data
