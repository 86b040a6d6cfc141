"""The JS path's shortcuts keep their promises.

A freed worker slot wakes one queued request, the longest queued, and a newcomer does not
jump the queue; a client that goes away is noticed although no task watches a fast request;
an HTTP/1 request without a body is not waited on. Real worker processes throughout.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from fazt.budget import BudgetPolicy
from fazt.capabilities import Capabilities
from fazt.errors import FaztError
from fazt.http._api import ApiGateway, ApiLimits
from tests.sandbox.conftest import (
    SandboxHarness,
    app,
    in_flight,
    request_body,
    running,
    wait_for,
)


async def test_queued_requests_are_served_in_arrival_order() -> None:
    files = app("module.exports = async (req) => req.path;")
    async with running(workers_per_app=1, worker_concurrency=1) as harness:
        assert (await harness.run("a", files)).response["body"] == "/api/x"   # started
        finished: list[int] = []

        async def one(number: int) -> None:
            out = await harness.run("a", files, request=request_body(f"/api/{number}"))
            assert out.response["body"] == f"/api/{number}"
            finished.append(number)

        async with trio.open_nursery() as nursery:
            for number in range(12):
                nursery.start_soon(one, number)
                # Each request is parked (or running) before the next one arrives.
                await trio.testing.wait_all_tasks_blocked()
        # One slot: the order they were let in is the order they finished in.
        assert finished == list(range(12))


async def test_a_newcomer_does_not_take_the_slot_a_woken_request_is_about_to_take() -> None:
    # The newcomer arrives in the same scheduler round as the freed slot's wake-up, before
    # the woken request has run (it is no longer parked, but it is next).
    spin = ("module.exports = async (req) => { const end = Date.now() + "
            "Number(req.path.slice(5)); while (Date.now() < end) {} return req.path; };")
    files = app(spin)
    async with running(workers_per_app=1, worker_concurrency=1) as harness:
        await harness.run("a", files, request=request_body("/api/0"))
        for _ in range(10):
            order: list[str] = []
            first_done = trio.Event()

            async def first(done: trio.Event) -> None:
                await harness.run("a", files, request=request_body("/api/60"))
                done.set()

            async def parked(order: list[str]) -> None:
                await harness.run("a", files, request=request_body("/api/1"))
                order.append("parked")

            async def newcomer(order: list[str], first_done: trio.Event) -> None:
                await first_done.wait()
                await harness.run("a", files, request=request_body("/api/1"))
                order.append("newcomer")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first, first_done)
                await wait_for(lambda: in_flight(harness, "a") == 1)
                nursery.start_soon(parked, order)   # parks: the only slot is busy
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(newcomer, order, first_done)
            assert order == ["parked", "newcomer"]


async def test_a_waiter_woken_while_its_worker_starts_does_not_start_another() -> None:
    # Waiters are woken for many reasons (another worker of the app exited, say); one that
    # wakes while the worker it asked for is still starting must not ask for a second.
    async with running(workers_per_app=2, spares=0) as harness:
        box = harness.sandbox
        async with trio.open_nursery() as nursery:
            nursery.start_soon(harness.run, "a", app("module.exports = () => 'ok';"))
            await wait_for(lambda: "a" in box._pools and box._pools["a"].starting == 1)
            for _ in range(3):
                box._pools["a"].wake(everyone=True)
                await trio.testing.wait_all_tasks_blocked()
                assert box._pools["a"].starting == 1
        assert len(box.stats()["pools"]["a"]["workers"]) == 1


async def test_a_woken_request_wakes_the_next_while_slots_are_free() -> None:
    # Newcomers that queued behind a woken request (see above) while more slots were free
    # than requests woken must not wait for a later release: each woken request that finds
    # room beyond its own slot wakes the next in line, so all three run at once here.
    files = app("module.exports = async (req, caps) => "
                "req.path === '/api/warm' ? 'ok' : (await caps.t.hold(), req.path);")
    release = trio.Event()

    async def hold(cap: str, method: str, args: list[Any], budget: Any) -> None:
        await release.wait()

    async with running(workers_per_app=1, worker_concurrency=4) as harness:
        async def one(path: str) -> Any:
            return await harness.run("a", files, request=request_body(path), request_s=5,
                                     granted={"t": ["hold"]}, capabilities=hold)

        await one("/api/warm")
        pool = harness.sandbox._pools["a"]
        pool.waking = 1             # as if a request had just been woken for a freed slot
        done: list[str] = []

        async def held(path: str) -> None:
            done.append((await one(path)).response["body"])

        async with trio.open_nursery() as nursery:
            for path in ("/api/1", "/api/2", "/api/3"):
                nursery.start_soon(held, path)
            await trio.testing.wait_all_tasks_blocked()
            assert len(pool.lot) == 3 and in_flight(harness, "a") == 0   # queued behind it
            pool.waking = 0
            pool.wake()             # the slot's release wakes the first; it wakes the rest
            await wait_for(lambda: in_flight(harness, "a") == 3)
            release.set()
        assert sorted(done) == ["/api/1", "/api/2", "/api/3"]


async def test_many_more_requests_than_slots_all_complete() -> None:
    # One waiter is woken per freed slot: none may be lost (every request would then wait
    # for its budget to run out).
    files = app("module.exports = async (req) => { await null; return req.path; };")
    async with running(workers_per_app=2, worker_concurrency=3) as harness:
        results: list[Any] = []

        async def one(number: int) -> None:
            out = await harness.run("a", files, request=request_body(f"/api/{number}"),
                                    request_s=20)
            results.append(out.response["body"])

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for number in range(200):
                    nursery.start_soon(one, number)
        assert sorted(results) == sorted(f"/api/{n}" for n in range(200))
        assert in_flight(harness, "a") == 0


class _Hosting:
    def __init__(self, source: str) -> None:
        self.source = source.encode()

    async def load(self, _file: Any) -> bytes:
        return self.source


def _site() -> Any:
    return SimpleNamespace(app="a", deploy_id=1, generation=1, files={"api/main.js": "f"},
                           runtime="fazt", capabilities=None,
                           manifest=SimpleNamespace(request_ms=None, memory_mb=None,
                                                    capabilities=None))


def _gateway(harness: SandboxHarness, source: str) -> ApiGateway:
    return ApiGateway(sandbox=harness.sandbox, hosting=_Hosting(source),  # type: ignore[arg-type]
                      policy=BudgetPolicy(request_s=10, js_cap_s=10),
                      limits=ApiLimits(max_body_bytes=1 << 20, max_response_bytes=1 << 20,
                                       memory_mb_default=128, memory_mb_max=512),
                      capabilities=Capabilities())


def _scope(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None,
           version: str = "1.1", path: str = "/api/x") -> dict[str, Any]:
    return {"type": "http", "http_version": version, "method": method, "path": path,
            "query_string": b"", "headers": headers or [(b"host", b"a.localhost")],
            "client": ("127.0.0.1", 4000)}


async def test_a_client_gone_during_a_slow_handler_cancels_it_in_the_worker(
        sandbox: SandboxHarness) -> None:
    gateway = _gateway(sandbox, "module.exports = async (req) => "
                                "req.path === '/api/x' ? new Promise(() => {}) : 'ok';")
    gone = trio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def disconnect_while_running() -> None:
        await wait_for(lambda: in_flight(sandbox, "a") == 1)
        gone.set()

    # Warm: the code is loaded and a worker runs it, so nothing but the answer is waited on.
    await gateway.serve(_scope(path="/api/warm"), receive, send, site=_site(),
                        request_id="r0", common=[])
    assert sent[1]["body"] == b"ok"
    sent.clear()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(disconnect_while_running)
        await gateway.serve(_scope(), receive, send, site=_site(), request_id="r1",
                            common=[])
    # Noticed long before the 10 s budget, nothing was sent, and the worker let it go.
    assert trio.current_time() - started < 5
    assert sent == []
    assert in_flight(sandbox, "a") == 0
    assert sandbox.sandbox.counters.timeouts == 0


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_an_http1_request_without_a_body_is_not_waited_on(
        sandbox: SandboxHarness, version: str) -> None:
    # No Content-Length, no Transfer-Encoding: HTTP/1 says there is no body, so receive()
    # is never called (this one would hang).
    gateway = _gateway(sandbox, "module.exports = async (req) => ({got: req.body ?? 'none'});")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with trio.fail_after(10):
        await gateway.serve(_scope(version=version), receive, send, site=_site(),
                            request_id="r1", common=[])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"got":"none"}'


async def test_a_request_with_a_body_is_still_read(sandbox: SandboxHarness) -> None:
    gateway = _gateway(sandbox, "module.exports = async (req) => ({got: req.body ?? 'none'});")
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": b"hel", "more_body": True},
                {"type": "http.request", "body": b"lo", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if not messages:            # the body was read: the next event is the disconnect
            await trio.sleep_forever()
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for headers in ([(b"content-length", b"5")], [(b"transfer-encoding", b"chunked")]):
        messages[:] = [{"type": "http.request", "body": b"hel", "more_body": True},
                       {"type": "http.request", "body": b"lo", "more_body": False}]
        sent.clear()
        await gateway.serve(_scope("POST", headers), receive, send, site=_site(),
                            request_id="r1", common=[])
        assert sent[1]["body"] == b'{"got":"hello"}', headers


async def test_an_answer_never_waits_through_another_requests_slice() -> None:
    # The worker queues its answers to write several at once: never across a slice of JS,
    # which may run for up to js_cap_s. Here C's answer would otherwise wait through A's
    # 0.8 s slice, the server would hear nothing for longer than any slice may run (when
    # E times out, it checks), and it would kill a healthy worker with C and A on it.
    # E and A reach the worker together, after C's slice, with E already past its deadline:
    # E must not cut A's slice short either (A's deadline was min'd with E's).
    spin = ("module.exports = async (req) => { const end = Date.now() + "
            "Number(req.path.slice(5)); while (Date.now() < end) {} return req.path; };")
    files = app(spin)
    slow = BudgetPolicy(request_s=5, js_cap_s=1)
    async with running(workers_per_app=1, worker_concurrency=8, kill_grace_s=0.5) as harness:
        await harness.run("a", files, request=request_body("/api/0"))
        outcomes: dict[str, Any] = {}

        async def one(path: str, policy: BudgetPolicy) -> None:
            try:
                outcomes[path] = (await harness.run("a", files, request=request_body(path),
                                                    policy=policy)).response["body"]
            except FaztError as exc:
                outcomes[path] = exc.code

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "/api/800", slow)                      # C
            await wait_for(lambda: in_flight(harness, "a") == 1)
            nursery.start_soon(one, "/api/0", BudgetPolicy(request_s=0.4, js_cap_s=0.3))
            nursery.start_soon(one, "/api/801", slow)                      # A
        assert outcomes == {"/api/800": "/api/800", "/api/0": "js_timeout",
                            "/api/801": "/api/801"}
        assert harness.sandbox.counters.kills == 0


async def test_a_log_line_is_sent_while_its_slice_still_runs() -> None:
    files = app("module.exports = async (req) => { console.log('before the spin'); "
                "const end = Date.now() + 1000; while (Date.now() < end) {} return 'ok'; };")
    async with running(workers_per_app=1) as harness:
        await harness.run("a", files)
        started = trio.current_time()
        assert (await harness.run("a", files)).response["body"] == "ok"
        # The line reached the server long before the 1 s slice that logged it ended.
        assert harness.logs.messages("a")[-1] == "before the spin"
        assert harness.logs.at[-1] - started < 0.5
