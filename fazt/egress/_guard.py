"""The SSRF guard, in the network layer: resolve once, vet every answer, dial a vetted address.

``GuardedBackend`` is the httpcore network backend of the egress client. httpcore asks it to
connect to the URL's host; it resolves the host itself (or takes the IP literal), refuses the
connection if *any* address is not public (``blocked_reason``), and connects to the first
vetted address. httpcore still runs TLS with the URL's host name, so SNI, certificate checks
and ``Host`` are the original host's, and there is no gap between the check and the use: the
address checked is the address dialled (no second lookup a rebinding DNS server could answer
differently). Unix sockets are refused.

``Resolver`` is a seam: ``SystemResolver`` asks the system (``getaddrinfo`` in threads of its
own, abandoned on cancellation); ``StaticResolver`` answers from a table (tests, and the
test hook that points a name at a local server).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import httpcore
import trio

from fazt.errors import NetBlockedAddress, NetError

from ._address import IPAddress, blocked_reason

log = logging.getLogger("fazt.egress")

MAX_ADDRESSES = 32      # answers considered per lookup (all of them are vetted)


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The addresses ``host`` resolves to, in preference order; NetError if none."""
        ...


class SystemResolver:
    """The system's resolver (getaddrinfo), in threads of its own: a lookup that is given up
    on (the call's deadline) keeps its thread until glibc times out, and a host whose DNS
    never answers must not take the threads the rest of the server uses (trio's default
    limiter: deploys, multipart parsing). At most ``max_threads`` lookups at once."""

    def __init__(self, *, max_threads: int = 16) -> None:
        self._max_threads = max_threads
        self._limiter: trio.CapacityLimiter | None = None

    @property
    def lookups_in_flight(self) -> int:
        """Lookups running now (abandoned ones included, until the system gives up)."""
        return 0 if self._limiter is None else int(self._limiter.borrowed_tokens)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if self._limiter is None:
            self._limiter = trio.CapacityLimiter(self._max_threads)
        try:
            infos = await trio.to_thread.run_sync(
                socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM,
                limiter=self._limiter, abandon_on_cancel=True)
        except (socket.gaierror, UnicodeError) as exc:
            raise NetError(f"could not resolve {host}: {exc}") from None
        return _unique(info[4][0] for info in infos)


class StaticResolver:
    """Answers from a table of host -> addresses; any other host does not resolve."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self._table = {host.lower().rstrip("."): [ipaddress.ip_address(a) for a in addresses]
                       for host, addresses in table.items()}

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        await trio.lowlevel.checkpoint()
        addresses = self._table.get(host)
        if not addresses:
            raise NetError(f"could not resolve {host}: no such host")
        return list(addresses)


def _unique(addresses: Iterable[Any]) -> list[IPAddress]:
    seen: list[IPAddress] = []
    for text in addresses:
        address = ipaddress.ip_address(str(text))      # a scoped one keeps its scope id
        if address not in seen:
            seen.append(address)
    return seen[:MAX_ADDRESSES]


Permit = Callable[[str, IPAddress], bool]
"""A test seam: ``permit(host, address)`` True lets that host reach a non-public address (a
local test server). Never set outside tests."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, resolver: Resolver, *, permit: Permit | None = None) -> None:
        self.resolver = resolver
        self._permit = permit
        self._inner = httpcore.TrioBackend()
        self.connects = 0       # connections opened (tests check that a refusal made none)

    async def vet(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host`` if every one of them may be connected to."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        addresses = [literal] if literal is not None else \
            await self.resolver.resolve(host, port)
        if not addresses:
            raise NetError(f"could not resolve {host}: no addresses")
        for address in addresses:
            reason = blocked_reason(address)
            if reason is None or (self._permit and self._permit(host, address)):
                continue
            if literal is not None:
                raise NetBlockedAddress(f"{host} is {reason}: only public Internet addresses "
                                        "can be fetched")
            # Which address a name has is not the app's to learn (it would map an internal
            # network through its errors): the operator's log has it.
            log.info("refused a connection to %s: it resolves to %s, %s", host, address, reason)
            raise NetBlockedAddress(f"{host} resolves to {reason.split(' (')[0]}: only public "
                                    "Internet addresses can be fetched")
        return addresses

    # httpcore's signature (its timeout parameter included: ASYNC109)
    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vet(host, port)
        self.connects += 1
        return await self._inner.connect_tcp(str(addresses[0]), port, timeout=timeout,
                                             local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise NetBlockedAddress("unix sockets cannot be fetched")

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)
