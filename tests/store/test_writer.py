"""The group-commit writer against the real test database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, select

from watchkeeper.app import open_database
from watchkeeper.config import Settings
from watchkeeper.store.writer import Writer, WriterOverloaded, WriterStopped

_metadata = MetaData()
notes = Table(
    "writer_test_notes",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("text", String(50), nullable=False, unique=True),
)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings)
    _metadata.create_all(engine)
    yield engine
    _metadata.drop_all(engine)
    engine.dispose()


def add_notes(conn: Connection, texts: Sequence[str]) -> list[int]:
    """A batch function: one insert per item, so a bad item breaks the whole batch transaction."""
    return [int(conn.execute(notes.insert().values(text=t)).inserted_primary_key[0]) for t in texts]  # type: ignore[index]


def stored(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(notes.c.text)).scalars())


def blocker(writer: Writer) -> tuple[threading.Event, threading.Event, Future[Any]]:
    """Occupy the writer thread until the returned `release` event is set."""
    busy, release = threading.Event(), threading.Event()

    def hold(conn: Connection, items: Sequence[Any]) -> list[None]:
        busy.set()
        release.wait(10)
        return [None] * len(items)

    future = writer.submit(hold, None)
    assert busy.wait(10)
    return busy, release, future


def test_concurrent_writes_share_transactions(engine: Engine) -> None:
    writer = Writer(engine, max_batch=100)
    writer.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(lambda n: writer.run_sync(add_notes, f"note {n}"), range(200)))
    finally:
        writer.stop()
    assert len(set(ids)) == 200
    assert len(stored(engine)) == 200
    assert writer.stats.jobs == 200
    assert writer.stats.batches < 200


def test_queued_jobs_are_committed_as_one_batch(engine: Engine) -> None:
    writer = Writer(engine)
    writer.start()
    _, release, first = blocker(writer)
    futures = [writer.submit(add_notes, f"n{n}") for n in range(10)]
    batches_before = writer.stats.batches
    release.set()
    assert [f.result(10) for f in futures] == sorted(f.result(10) for f in futures)
    first.result(10)
    writer.stop()
    assert writer.stats.batches - batches_before == 2  # the blocker's, then all ten together
    assert len(stored(engine)) == 10


def test_a_failing_job_fails_alone_and_the_rest_of_its_batch_commits(engine: Engine) -> None:
    writer = Writer(engine)
    writer.start()
    _, release, _ = blocker(writer)
    good = [writer.submit(add_notes, f"good {n}") for n in range(3)]
    duplicate = writer.submit(add_notes, "good 0")  # violates the unique constraint
    more = writer.submit(add_notes, "good 3")
    release.set()
    assert all(isinstance(f.result(10), int) for f in [*good, more])
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        duplicate.result(10)
    writer.stop()
    assert stored(engine) == ["good 0", "good 1", "good 2", "good 3"]
    assert writer.stats.failed_batches >= 1


def test_stop_commits_everything_already_queued(engine: Engine) -> None:
    writer = Writer(engine, max_batch=5)
    writer.start()
    _, release, _ = blocker(writer)
    futures = [writer.submit(add_notes, f"queued {n}") for n in range(23)]
    stopper = threading.Thread(target=writer.stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while not writer._stopping and time.monotonic() < deadline:  # stop() has begun: no new work
        time.sleep(0.001)
    with pytest.raises(WriterStopped):
        writer.submit(add_notes, "too late")
    release.set()
    stopper.join(20)
    assert all(f.done() and not f.exception() for f in futures)
    assert len(stored(engine)) == 23
    assert not writer.running


def test_a_full_queue_raises_writer_overloaded(engine: Engine) -> None:
    writer = Writer(engine, max_queue=3)
    writer.start()
    _, release, _ = blocker(writer)
    accepted = [writer.submit(add_notes, f"n{n}") for n in range(3)]
    with pytest.raises(WriterOverloaded, match="full"):
        writer.submit(add_notes, "one too many")
    release.set()
    assert [isinstance(f.result(10), int) for f in accepted] == [True] * 3
    writer.run_sync(add_notes, "after the rush")
    writer.stop()
    assert "after the rush" in stored(engine)


def test_a_stopped_writer_takes_no_work(engine: Engine) -> None:
    writer = Writer(engine)
    with pytest.raises(WriterStopped):
        writer.submit(add_notes, "never started")
    writer.start()
    writer.stop()
    with pytest.raises(WriterStopped):
        writer.submit(add_notes, "after stop")


def test_async_waiters_of_one_batch_get_their_own_results_and_errors(engine: Engine) -> None:
    import asyncio

    writer = Writer(engine)
    writer.start()

    async def scenario() -> list[Any]:
        _, release, first = blocker(writer)
        tasks = [asyncio.ensure_future(writer.run(add_notes, f"async {n}")) for n in range(20)]
        duplicate = asyncio.ensure_future(writer.run(add_notes, "async 0"))
        abandoned = asyncio.ensure_future(writer.run(add_notes, "abandoned"))
        await asyncio.sleep(0.05)  # every job is queued behind the blocker
        abandoned.cancel()  # its request went away: the rest of the batch is unaffected
        release.set()
        results = await asyncio.gather(*tasks, duplicate, return_exceptions=True)
        first.result(10)
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        writer.stop()
    assert all(isinstance(r, int) for r in results[:20])
    assert len(set(results[:20])) == 20
    assert isinstance(results[20], Exception)
    assert "unique" in str(results[20]).lower() or "duplicate" in str(results[20]).lower()
    assert [t for t in stored(engine) if t.startswith("async")] == sorted(f"async {n}" for n in range(20))


def test_a_small_batch_waits_for_the_writes_still_coming(engine: Engine) -> None:
    writer = Writer(engine, gather_seconds=5.0, coming=lambda: 1)  # always more on the way
    writer.start()
    try:
        futures = []
        for n in range(Writer.GATHER_BATCH):
            futures.append(writer.submit(add_notes, f"note {n}"))
            time.sleep(0.002)  # arriving one by one, as processed envelopes do
        for future in futures:
            future.result(10)
    finally:
        writer.stop()
    # One transaction: the first write waited for the rest, until the batch was full.
    assert writer.stats.batches == 1 and len(stored(engine)) == Writer.GATHER_BATCH


def test_a_batch_commits_at_once_when_nothing_is_coming(engine: Engine) -> None:
    writer = Writer(engine, gather_seconds=5.0, coming=lambda: 0)
    writer.start()
    try:
        started = time.monotonic()
        writer.run_sync(add_notes, "alone")
        assert time.monotonic() - started < 2.0  # not the 5 s a gathering batch could wait
    finally:
        writer.stop()
