"""`serve --role web|ingest|worker` and the lease that lets exactly one process do the background work
(store/leases.py), with real servers on one database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select

from tests.conftest import Server, make_project, run_server
from tests.errors.test_ingest_protocol import send_event
from watchkeeper.app import Runtime
from watchkeeper.cli import build_parser
from watchkeeper.config import ConfigError, Settings, load_settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.leases import Job, Leadership, acquire, holder_name, leases
from watchkeeper.store.writer import call_each


def with_role(settings: Settings, role: str, **more: Any) -> Settings:
    return settings.model_copy(update={"role": role, **more})


def wait_until(condition: Callable[[], Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def leading(runtime: Runtime) -> bool:
    return runtime.leadership is not None and runtime.leadership.leading


def test_an_ingest_process_takes_envelopes_and_pings_but_serves_no_pages(settings: Settings) -> None:
    with run_server(with_role(settings, "ingest")) as server:
        project = make_project(server)
        assert send_event(server, project).status_code == 200
        assert server.runtime.processors is not None
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.get(f"{server.url}/api/v1/projects").status_code == 404
        assert httpx.get(f"{server.url}/login").status_code == 404
        # The ping route answers: an unknown check is its own plain 404, not the router's JSON one.
        ping = httpx.get(f"{server.url}/ping/00000000-0000-4000-8000-000000000000")
        assert (ping.status_code, ping.text) == (404, "not found")
        assert httpx.get(f"{server.url}/status/anything").json() == {"detail": "Not Found"}
        assert server.runtime.leadership is None  # no background work here


def test_a_web_process_serves_pages_and_the_api_but_no_envelopes(settings: Settings) -> None:
    with run_server(with_role(settings, "web")) as server:
        project = make_project(server)
        assert httpx.get(f"{server.url}/login").status_code == 200
        assert httpx.get(f"{server.url}/api/v1/projects").status_code == 401  # there, and wants a token
        assert send_event(server, project).status_code == 404
        assert server.runtime.processors is None and server.runtime.leadership is None


def test_a_worker_does_the_background_work_and_serves_only_health(settings: Settings) -> None:
    with run_server(with_role(settings, "worker", lease_seconds=1.0)) as server:
        wait_until(lambda: leading(server.runtime))
        assert server.runtime.processors is None
        assert httpx.get(f"{server.url}/health/ready").status_code == 200
        assert "watchkeeper_background_leader 1.0" in httpx.get(f"{server.url}/metrics").text
        assert httpx.get(f"{server.url}/login").status_code == 404
        assert httpx.post(f"{server.url}/api/1/envelope/", content=b"{}").status_code == 404


def test_of_two_servers_on_one_database_one_works_and_the_other_takes_over_when_it_stops(
    settings: Settings,
) -> None:
    quick = with_role(settings, "all", lease_seconds=1.0)
    first: contextlib.AbstractContextManager[Server] | None = run_server(quick)
    assert first is not None
    leader = first.__enter__()
    try:
        wait_until(lambda: leading(leader.runtime))
        with run_server(quick) as standby:
            time.sleep(1.0)  # three of its rounds: it keeps asking, and keeps waiting
            assert not leading(standby.runtime) and leading(leader.runtime)
            assert "watchkeeper_background_leader 0.0" in httpx.get(f"{standby.url}/metrics").text
            stopped = time.monotonic()
            first.__exit__(None, None, None)
            first = None
            wait_until(lambda: leading(standby.runtime), timeout=5)
            # Released on a clean stop: taken over within a round or two, not after a whole term.
            assert time.monotonic() - stopped < 3
    finally:
        if first is not None:
            first.__exit__(None, None, None)


def test_a_holder_that_stops_renewing_loses_the_lease_after_its_term(runtime: Runtime) -> None:
    """A process that died (or lost the database) renews nothing: after one term a standby takes
    over, and the old holder, if it comes back, stops its work at its next round."""
    clock = ManualClock()

    async def scenario() -> None:
        started: list[str] = []

        def leadership(name: str) -> Leadership[str]:
            async def work(holder: str) -> None:
                started.append(holder)
                await asyncio.sleep(3600)

            return Leadership("test-work", write=lambda fn: runtime.writer.run(call_each, fn), now=clock.now,
                              jobs=[Job("work", work)], runtime=name, term=30.0, holder=name)

        a, b = leadership("a"), leadership("b")
        await a.round()
        await b.round()
        await asyncio.sleep(0)
        assert a.leading and not b.leading and started == ["a"]
        clock.advance(20)
        await a.round()  # renewed until t+50
        clock.advance(25)
        await b.round()
        assert not b.leading  # a's renewal still holds
        clock.advance(10)  # a did not renew since t+20: its term ended at t+50
        await b.round()
        await asyncio.sleep(0)
        assert b.leading and started == ["a", "b"]
        work = a.tasks[0]
        await a.round()
        assert not a.leading and work.cancelled()
        await b._stop_work()

        def holder(conn: Connection) -> str | None:
            return conn.scalar(select(leases.c.holder).where(leases.c.name == "test-work"))

        assert await runtime.writer.run(call_each, holder) == "b"

    asyncio.run(scenario())


def test_the_role_comes_from_the_command_line_or_the_settings(settings: Settings) -> None:
    args = build_parser().parse_args(["serve", "--role", "worker"])
    assert args.server_role == "worker"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--role", "everything"])
    assert load_settings(environ={"WATCHKEEPER_ROLE": "ingest"}).role == "ingest"
    with pytest.raises(ConfigError, match="role"):
        load_settings(environ={"WATCHKEEPER_ROLE": "everything"})


def test_a_restarted_server_takes_the_lease_of_its_dead_predecessor_at_once(runtime: Runtime) -> None:
    """After a crash (kill -9) the lease row still names the dead process for up to a term; a process
    on the same host sees that process is gone and takes over without waiting. A live holder, or one on
    another host, keeps the lease until its term ends."""
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()  # exited and reaped: its pid names no process (until reused, far later)
    here = socket.gethostname()[:100]
    cases = [
        (f"{here}:{dead_pid.pid}:0badc0de", True),  # died on this host
        (f"{here}:{os.getppid()}:0badc0de", False),  # alive on this host
        (f"elsewhere:{dead_pid.pid}:0badc0de", False),  # another host: only the term tells
    ]
    for previous, taken in cases:
        def take(conn: Connection, previous: str = previous) -> bool:
            conn.execute(leases.delete())
            conn.execute(leases.insert().values(name="background", holder=previous, expires_at=1e12))
            return acquire(conn, "background", holder_name(), now=1000.0, term=30)

        assert runtime.writer.run_sync(call_each, take) is taken, previous


# The loops each background job runs, by the qualified name of their coroutine.
BACKGROUND_LOOPS = ("Responder.run", "Scheduler.run", "Alerting._evaluate_loop", "Alerting._notify_loop")


def running_loops(server: Server) -> dict[str, int]:
    """How many tasks of the server's event loop are running each of BACKGROUND_LOOPS now (asked on that
    loop, from the test's thread)."""
    loop = next(iter(server.runtime.tasks)).get_loop()

    async def count() -> dict[str, int]:
        found = dict.fromkeys(BACKGROUND_LOOPS, 0)
        for task in asyncio.all_tasks():
            coro: Any = task.get_coro()
            while coro is not None:  # down the chain of awaits: a job's function awaits the loop
                name = getattr(getattr(coro, "cr_code", None), "co_qualname", None)
                if name in found:
                    found[name] += 1
                coro = getattr(coro, "cr_await", None)
        return found

    return asyncio.run_coroutine_threadsafe(count(), loop).result(5)


def test_background_work_runs_only_where_the_lease_is_held_as_it_moves_and_comes_back(settings: Settings) -> None:
    """Every background job (alert evaluation and delivery, the incident responder, the uptime
    scheduler) runs in the one process holding the lease: a process that loses it stops all of them,
    and one that takes it back starts each once again. Each server has its own clock; moving one's
    clock past the other's term is, to the lease, the other not renewing for a whole term (it hung, or
    lost the database)."""
    quick = with_role(settings, "all", lease_seconds=1.0)
    one = dict.fromkeys(BACKGROUND_LOOPS, 1)
    none = dict.fromkeys(BACKGROUND_LOOPS, 0)
    clock_a, clock_b = ManualClock(), ManualClock()
    with run_server(quick, clock_a) as a:
        wait_until(lambda: leading(a.runtime) and running_loops(a) == one)
        with run_server(quick, clock_b) as b:
            time.sleep(0.7)  # two of its rounds
            assert not leading(b.runtime) and running_loops(b) == none
            clock_b.advance(5)  # a's renewals are now too old for b: b takes over, a stops
            wait_until(lambda: leading(b.runtime) and not leading(a.runtime))
            wait_until(lambda: running_loops(b) == one)
            time.sleep(0.7)
            assert running_loops(a) == none
            clock_a.advance(10)  # and back to a
            wait_until(lambda: leading(a.runtime) and not leading(b.runtime))
            time.sleep(0.7)
            assert running_loops(a) == one
            assert running_loops(b) == none
            assert a.runtime.leadership is not None
            assert [task.get_name() for task in a.runtime.leadership.tasks if not task.done()] == [
                "background: retention", "background: uptime checks", "background: uptime sweep",
                "background: alert evaluator", "background: alert delivery", "background: incident responder"]
