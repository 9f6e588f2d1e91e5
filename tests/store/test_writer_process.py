"""The writer process (store/writer_process.py): batches of the functions given to it run in a child on
its own connection, ordered by the one writer thread; a child that dies fails only the batch it held
(WriterUnavailable, a 503 for ingest) and the next batch starts a new one."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, select

from watchkeeper.app import open_database
from watchkeeper.config import Settings
from watchkeeper.store.writer import Writer, WriterUnavailable, call_each
from watchkeeper.store.writer_process import WriterProcess

_metadata = MetaData()
marks = Table(
    "writer_process_marks",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("text", String(50), nullable=False, unique=True),
    Column("pid", Integer, nullable=False),
)


def add_marks(conn: Connection, texts: Sequence[str]) -> list[int]:
    """A batch function (module level: it travels to the child by name); records which process ran it."""
    return [int(conn.execute(marks.insert().values(text=t, pid=os.getpid())).inserted_primary_key[0])  # type: ignore[index]
            for t in texts]


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = open_database(settings)
    _metadata.create_all(engine)
    yield engine
    _metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child imports this module to find `add_marks`: put the repository on its module path."""
    root = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


@pytest.fixture
def writer(engine: Engine, settings: Settings) -> Iterator[Writer]:
    process = WriterProcess(settings.sqlalchemy_url)
    writer = Writer(engine, process=process, process_functions=frozenset({add_marks}))
    writer.start()
    yield writer
    writer.stop()


def stored(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {row.text: row.pid for row in conn.execute(select(marks.c.text, marks.c.pid))}


def test_batches_of_the_given_functions_run_in_the_child_and_others_here(writer: Writer, engine: Engine) -> None:
    assert writer.run_sync(add_marks, "apart") > 0
    here = writer.run_sync(call_each, lambda conn: add_marks(conn, ["here"])[0])
    assert here > 0
    pids = stored(engine)
    assert pids["here"] == os.getpid()
    assert writer.process is not None
    assert pids["apart"] == writer.process.pid != os.getpid()


@contextlib.contextmanager
def writer_held(writer: Writer) -> Iterator[None]:
    """Keep the writer busy in a write of its own while the block queues jobs behind it: they then
    make up the next batch together."""
    busy, release = threading.Event(), threading.Event()

    def hold(conn: Connection, items: Sequence[Any]) -> list[None]:
        busy.set()
        release.wait(10)
        return [None] * len(items)

    blocker = writer.submit(hold, None)
    assert busy.wait(10)
    try:
        yield
    finally:
        release.set()
        blocker.result(10)


def test_a_failing_job_fails_alone_and_the_rest_of_its_batch_commits(writer: Writer, engine: Engine) -> None:
    with writer_held(writer):
        good = [writer.submit(add_marks, f"good {n}") for n in range(3)]
        duplicate = writer.submit(add_marks, "good 0")
    assert all(isinstance(f.result(10), int) for f in good)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        duplicate.result(10)
    assert sorted(stored(engine)) == ["good 0", "good 1", "good 2"]


def test_a_killed_child_fails_only_its_batch_and_is_replaced(writer: Writer, engine: Engine) -> None:
    process = writer.process
    assert process is not None
    writer.run_sync(add_marks, "before")
    victim = process.pid
    assert victim is not None
    os.kill(victim, signal.SIGSTOP)  # it will hold the next batch without answering
    try:
        held = writer.submit(add_marks, "held")
        time.sleep(0.2)
        assert not held.done()
    finally:
        os.kill(victim, signal.SIGKILL)
    with pytest.raises(WriterUnavailable, match="writer process stopped"):
        held.result(10)
    assert writer.run_sync(add_marks, "after") > 0
    assert process.restarts == 1 and process.pid not in (None, victim)
    assert sorted(stored(engine)) == ["after", "before"]


def test_stopping_the_writer_stops_the_child(engine: Engine, settings: Settings) -> None:
    process = WriterProcess(settings.sqlalchemy_url)
    writer = Writer(engine, process=process, process_functions=frozenset({add_marks}))
    writer.start()
    writer.run_sync(add_marks, "one")
    pid = process.pid
    assert pid is not None
    writer.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_when_busy_the_child_runs_only_during_bursts(engine: Engine, settings: Settings) -> None:
    """`process_when_busy`: quiet writes run here; a batch of BUSY_BATCH jobs starts the child, whose
    batches follow once it is ready; after process_idle_seconds without such a batch it stops again."""
    process = WriterProcess(settings.sqlalchemy_url)
    writer = Writer(engine, process=process, process_functions=frozenset({add_marks}), process_when_busy=True,
                    process_idle_seconds=0.6)
    writer.start()
    try:
        writer.run_sync(add_marks, "quiet")
        assert stored(engine)["quiet"] == os.getpid() and not process.ready and process.pid is None
        with writer_held(writer):  # the next batch holds every job of the burst
            burst = [writer.submit(add_marks, f"burst {n}") for n in range(Writer.BUSY_BATCH)]
        assert all(isinstance(f.result(10), int) for f in burst)  # written here while the child starts
        deadline = time.monotonic() + 20
        while not process.ready:
            assert time.monotonic() < deadline, "the writer process did not start"
            time.sleep(0.02)
        child = process.pid
        more = [writer.submit(add_marks, f"more {n}") for n in range(Writer.BUSY_BATCH)]
        assert all(isinstance(f.result(10), int) for f in more)
        pids = stored(engine)
        assert child in {pids[f"more {n}"] for n in range(Writer.BUSY_BATCH)}
        while process.pid is not None:  # set once the child has exited and been reaped
            assert time.monotonic() < deadline, "the idle writer process did not stop"
            time.sleep(0.05)
        assert child is not None
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
        writer.run_sync(add_marks, "quiet again")
        assert stored(engine)["quiet again"] == os.getpid()
        assert len(stored(engine)) == 2 + 2 * Writer.BUSY_BATCH
    finally:
        writer.stop()
