"""Processor processes (errors/processors.py) behind the real server: events processed in a child are
stored; a child that dies fails only the requests it held (503, never acknowledged) and is replaced;
a full backlog answers 503 at once; `ingest.processors: 0` processes in the server process."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import ProjectFixture, Server
from tests.errors.test_ingest_protocol import auth, envelope, event, item, new_id, post
from watchkeeper.config import Settings
from watchkeeper.errors.envelope import EnvelopeItem
from watchkeeper.errors.processing import (
    EnvelopeJob,
    ItemsJob,
    ProcessedItems,
    merge_processed,
    process_envelope,
    process_envelope_for_writer,
    process_items,
)
from watchkeeper.errors.processors import PROCESSOR_NICENESS, ProcessorPool
from watchkeeper.errors.scrubbing import ScrubbingRules
from watchkeeper.errors.storage import save_envelopes, save_packed_envelopes
from watchkeeper.errors.tables import events, issue_tags, issues
from watchkeeper.store.engine import for_writing


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    ingest = {"processors": 2, "min_processors": 2, **getattr(request, "param", {})}
    return settings.model_copy(update={"ingest": settings.ingest.model_copy(update=ingest)})


def send(server: Server, project: ProjectFixture, event_id: str) -> httpx.Response:
    return post(server, project.id, envelope(item("event", event(event_id))), headers=auth(project.public_key))


def stored(server: Server, event_id: str) -> bool:
    with server.runtime.engine.connect() as conn:
        return conn.scalar(select(func.count()).where(events.c.event_id == event_id)) == 1


def pool_of(server: Server) -> ProcessorPool:
    assert server.runtime.processors is not None
    return server.runtime.processors


def wait_until(condition: Callable[[], Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def in_background(fn: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(fn()))
    thread.start()
    return thread, answers


def test_events_from_many_clients_are_processed_by_every_processor(server: Server, project: ProjectFixture) -> None:
    pool = pool_of(server)
    assert len(pool.pids) == 2 and os.getpid() not in pool.pids
    ids = [new_id() for _ in range(40)]
    threads = [in_background(lambda i=i: send(server, project, i)) for i in ids]
    for thread, _ in threads:
        thread.join(30)
    assert [answers[0].status_code for _, answers in threads] == [200] * 40
    assert [answers[0].json()["id"] for _, answers in threads] == ids
    assert all(stored(server, i) for i in ids)


def test_processors_run_at_a_lower_priority_than_the_server(server: Server) -> None:
    """The event loop and the writer are the narrow part of the pipeline: processors yield to them."""
    lower = min(19, os.getpriority(os.PRIO_PROCESS, 0) + PROCESSOR_NICENESS)
    for pid in pool_of(server).pids:  # set as the child starts, before its first job
        wait_until(lambda pid=pid: os.getpriority(os.PRIO_PROCESS, pid) == lower)


def _envelope_job(project: ProjectFixture, *payloads: dict[str, Any]) -> EnvelopeJob:
    context = ItemsJob(project.id, 1_767_225_600.0, [], None, "203.0.113.9", ScrubbingRules(), {"event": 1 << 20})
    body = envelope(*(item("event", payload) for payload in payloads))
    return EnvelopeJob(body, None, 1 << 24, auth(project.public_key)["X-Sentry-Auth"], None, context, {})


def _stored_rows(server: Server, event_ids: list[str]) -> list[tuple[Any, ...]]:
    with server.runtime.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.event_id, events.c.title, events.c.data, issues.c.hash, issues.c.times_seen)
            .join(issues, issues.c.id == events.c.issue_id).where(events.c.event_id.in_(event_ids))
            .order_by(events.c.event_id)
        ).all()
        tags = conn.execute(select(func.count()).select_from(issue_tags)).scalar()
    return [(*row, tags) for row in rows]


def test_records_packed_in_the_processor_are_stored_as_if_never_packed(
    server: Server, project: ProjectFixture
) -> None:
    """A processor pickles the records once for the writer process; the server only counts outcomes."""
    payloads = [event(new_id()) | {"user": {"id": "u1"}, "tags": {"shop": "eu"}} for _ in range(2)]
    job = _envelope_job(project, *payloads)
    packed = process_envelope_for_writer(job).done
    assert packed.packed is not None and not packed.nothing_to_store
    assert packed.records.events == [] and packed.records.outcomes == {("error", "accepted"): 2}
    plain = process_envelope(_envelope_job(project, *payloads)).done
    assert plain.packed is None and len(plain.records.events) == 2

    writer = for_writing(server.runtime.engine)
    with writer.begin() as conn:
        save_packed_envelopes(conn, [packed.packed])
    ids = sorted(p["event_id"] for p in payloads)
    via_packed = _stored_rows(server, ids)
    with writer.begin() as conn:
        conn.execute(events.delete())
        conn.execute(issues.delete())
    with writer.begin() as conn:
        save_envelopes(conn, [plain.records])
    assert via_packed == _stored_rows(server, ids) and len(via_packed) == 2

    with pytest.raises(ValueError, match="packed"):
        merge_processed(ProcessedItems(plain.records), packed)


def test_a_killed_processor_fails_only_its_requests_and_is_replaced(server: Server, project: ProjectFixture) -> None:
    pool = pool_of(server)
    victim = pool.pids[0]
    os.kill(victim, signal.SIGSTOP)  # it holds the next job without answering
    try:
        held = new_id()
        thread, answers = in_background(lambda: send(server, project, held))
        wait_until(lambda: pool.pending == 1)
    finally:
        os.kill(victim, signal.SIGKILL)
    thread.join(30)
    assert answers[0].status_code == 503
    assert answers[0].headers["Retry-After"] == "1"
    assert "processor stopped" in answers[0].json()["detail"]
    assert not stored(server, held)
    wait_until(lambda: pool.restarts == 1 and len(pool.pids) == 2 and victim not in pool.pids)
    assert "watchkeeper_processor_restarts 1.0" in httpx.get(f"{server.url}/metrics").text
    after = [new_id() for _ in range(4)]
    assert [send(server, project, i).status_code for i in after] == [200] * 4
    assert all(stored(server, i) for i in after)


@pytest.mark.parametrize("settings", [{"processors": 1, "min_processors": 1, "max_processing_backlog": 1}],
                         indirect=True)
def test_a_full_backlog_is_refused_at_once(server: Server, project: ProjectFixture) -> None:
    pool = pool_of(server)
    (child,) = pool.pids
    os.kill(child, signal.SIGSTOP)
    try:
        first = new_id()
        thread, answers = in_background(lambda: send(server, project, first))
        wait_until(lambda: pool.pending == 1)
        refused = send(server, project, new_id())
        assert refused.status_code == 503
        assert "waiting to be processed" in refused.json()["detail"]
    finally:
        os.kill(child, signal.SIGCONT)
    thread.join(30)
    assert answers[0].status_code == 200 and stored(server, first)


@pytest.mark.parametrize("settings", [{"processors": 0}], indirect=True)
def test_processors_0_processes_in_the_server_process(server: Server, project: ProjectFixture) -> None:
    assert server.runtime.processors is None
    event_id = new_id()
    assert send(server, project, event_id).status_code == 200
    assert stored(server, event_id)


def test_stopping_the_server_stops_the_processors(settings: Settings) -> None:
    from tests.conftest import run_server

    with run_server(settings) as server:
        pids = pool_of(server).pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_pool_grows_while_envelopes_queue_and_shrinks_when_idle() -> None:
    """One child while idle; a queue behind it starts a second, which takes new work at once; after
    idle_seconds without a queue the extra child is stopped again."""

    async def scenario() -> None:
        pool = ProcessorPool(2, min_size=1, idle_seconds=0.4)
        await pool.start()
        try:
            assert pool.running == 1
            (first,) = pool.pids
            os.kill(first, signal.SIGSTOP)  # its queue only grows

            def job(n: int) -> ItemsJob:
                item = EnvelopeItem("event", {}, b'{"message": "queued %d"}' % n)
                return ItemsJob(1, 1.7e9, [item], None, None, ScrubbingRules(), {"event": 1 << 20})

            queued = [asyncio.ensure_future(pool.process(process_items, job(n))) for n in range(ProcessorPool.GROW_AT)]
            await asyncio.sleep(0)
            assert pool.running == 1  # GROW_AT waiting jobs, not yet more
            behind = asyncio.ensure_future(pool.process(process_items, job(99)))
            for _ in range(2000):  # a child starts in well under a second, unless the machine is busy
                if pool.running == 2:
                    break
                await asyncio.sleep(0.01)
            assert pool.running == 2
            second = next(pid for pid in pool.pids if pid != first)
            # The new child works while the first is still stopped.
            done = await asyncio.wait_for(pool.process(process_items, job(100)), 10)
            assert done.records.events[0].title == "queued 100"
            os.kill(first, signal.SIGCONT)
            titles = [r.records.events[0].title for r in await asyncio.gather(*queued, behind)]
            assert titles == [f"queued {n}" for n in range(ProcessorPool.GROW_AT)] + ["queued 99"]
            for _ in range(600):
                if pool.running == 1:
                    break
                await asyncio.sleep(0.05)
            assert pool.running == 1 and pool.retired == 1 and pool.restarts == 0
            for _ in range(200):  # reaped right after it left the pool
                try:
                    os.kill(second, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(ProcessLookupError):
                os.kill(second, 0)
            assert (await pool.process(process_items, job(7))).records.events[0].title == "queued 7"
        finally:
            await pool.stop()

    asyncio.run(scenario())
