"""T25: DNS rebinding and slow resolvers against the guard's network backend.

A rebinding resolver answers a vetted address once and a forbidden one the next time (TTL 0).
The guard resolves once per connection and dials the address it vetted, so a forbidden answer
is refused and never dialled, however the answers alternate. Two listeners on loopback stand in
for "the public server" (127.0.0.1, which the test seam lets rebind.test reach) and "the
internal one" (127.0.0.2, which nothing permits): the internal one must see no connection.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

import pytest
import trio

from fazt.egress import Egress, GuardedBackend, IPAddress, SystemResolver, parse_url
from fazt.errors import NetBlockedAddress, NetTimeout

PUBLIC = ipaddress.ip_address("127.0.0.1")
INTERNAL = ipaddress.ip_address("127.0.0.2")
RUNS = 1000


class Rebinding:
    """First answer public, second internal, and so on (or both at once with ``mixed``)."""

    def __init__(self, *, mixed: bool = False) -> None:
        self.calls = 0
        self.mixed = mixed

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        await trio.lowlevel.checkpoint()
        self.calls += 1
        if self.mixed:
            return [PUBLIC, INTERNAL] if self.calls % 2 else [INTERNAL, PUBLIC]
        return [PUBLIC] if self.calls % 2 else [INTERNAL]


class Hanging:
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


def permit(host: str, address: IPAddress) -> bool:
    return host == "rebind.test" and address == PUBLIC


async def _listen(address: str, port: int, accepted: list[str],
                  task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    listeners = await trio.open_tcp_listeners(port, host=address)

    async def handler(stream: trio.SocketStream) -> None:
        accepted.append(address)
        await stream.aclose()

    await trio.serve_listeners(handler, listeners, task_status=task_status)


@pytest.mark.parametrize("mixed", [False, True], ids=["alternating", "mixed answers"])
async def test_a_rebinding_answer_is_never_dialled(mixed: bool) -> None:
    probe = trio.socket.socket()
    await probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    accepted: list[str] = []
    backend = GuardedBackend(Rebinding(mixed=mixed), permit=permit)
    async with trio.open_nursery() as nursery:
        await nursery.start(_listen, "127.0.0.1", port, accepted)
        await nursery.start(_listen, "127.0.0.2", port, accepted)
        refused = 0
        for _ in range(RUNS):
            try:
                stream = await backend.connect_tcp("rebind.test", port)
            except NetBlockedAddress:
                refused += 1
                continue
            await stream.aclose()
        # every accepted connection has been handled before the listeners stop
        with trio.fail_after(5):
            while len(accepted) < backend.connects:
                await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    assert "127.0.0.2" not in accepted
    if mixed:       # any forbidden answer refuses the host: nothing is dialled at all
        assert (refused, backend.connects, accepted) == (RUNS, 0, [])
    else:
        assert refused == RUNS // 2
        assert backend.connects == RUNS // 2 == len(accepted)


async def test_a_hanging_resolver_is_bounded_by_the_deadline() -> None:
    egress = Egress(resolver=Hanging())
    target = parse_url("https://slow-dns.test/")
    started = trio.current_time()
    with pytest.raises(NetTimeout):
        await egress.fetch("GET", target, headers=[], body=b"", deadline=started + 0.3,
                           prepare=lambda hop: (hop.url, []))
    assert trio.current_time() - started < 0.3 + 0.1
    await egress.aclose()


async def test_lookups_given_up_on_keep_to_threads_of_their_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup abandoned at its deadline keeps its thread until the system's resolver gives
    up: a host whose DNS never answers must not take trio's default threads, which deploys
    and multipart parsing use."""
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".slow.test"):
            release.wait(20)
            raise socket.gaierror("timed out")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    resolver = SystemResolver(max_threads=4)
    try:
        for i in range(50):
            with trio.move_on_after(0.01):
                await resolver.resolve(f"h{i}.slow.test", 443)
        assert resolver.lookups_in_flight == 4
        assert trio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
        with trio.fail_after(2):
            assert await trio.to_thread.run_sync(lambda: 42) == 42
    finally:
        release.set()
