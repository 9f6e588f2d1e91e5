"""The one database writer: a thread that commits queued work in groups.

Every write that must be acknowledged goes through here. Requests queue a job and wait; the writer
takes everything queued (up to `max_batch`), runs it in ONE transaction and commits once, then wakes
every waiter. One commit (and one fsync) is shared by hundreds of requests: that is how SQLite gives
both durability — a 2xx means committed — and throughput. Jobs are grouped by their batch function so
a function can write many items with one `executemany`.

If a batch fails, each job of it is retried in a transaction of its own, so one bad item fails only
its own request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from watchkeeper.lib.clock import Clock, SystemClock
from watchkeeper.store.engine import for_writing
from watchkeeper.store.writer_process import WriterProcess

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A batch function writes all items in the caller's transaction and returns one result per item.
BatchFunction = Callable[[Connection, Sequence[Any]], Sequence[Any]]


class WriterOverloaded(Exception):
    """The queue is full: the caller should answer 503 and let the client retry."""


class WriterStopped(Exception):
    """The writer is shutting down and takes no more work."""


class WriterUnavailable(WriterOverloaded):
    """The writer process died while holding this write: not committed as far as we know; retry."""


@dataclass(slots=True)
class _Job(Generic[T]):
    function: BatchFunction
    item: Any
    # Exactly one of: a concurrent future (submit/run_sync), or an asyncio future and its loop (run).
    future: Future[Any] | None = None
    waiter: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> bool:
        """False if the caller gave up already (then the job is not run)."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        return self.waiter is not None and not self.waiter.cancelled()


def _settle(waiter: asyncio.Future[Any] | Future[Any], outcome: Any, failed: bool) -> None:
    if waiter.done():  # an asyncio waiter whose request was cancelled
        return
    if failed:
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)


def _settle_all(outcomes: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for waiter, outcome, failed in outcomes:
        _settle(waiter, outcome, failed)


def _deliver(jobs: Sequence[_Job[Any]], outcomes: Sequence[Any], failed: Sequence[bool]) -> None:
    """Give each job its result or exception. Asyncio waiters are woken with one call per event loop
    per batch: a wake-up per job (one system call each) cost more than the rest of the hand-over."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]] = {}
    for job, outcome, fail in zip(jobs, outcomes, failed, strict=True):
        if job.future is not None:
            _settle(job.future, outcome, fail)
        elif job.waiter is not None and job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job.waiter, outcome, fail))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, settled)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass


@dataclass
class WriterStats:
    batches: int = 0
    jobs: int = 0
    failed_batches: int = 0
    last_commit_seconds: float = 0.0


class Writer:
    """Group-commit writer thread.

    BUSY_BATCH: with `process_when_busy`, a batch with this many jobs for the process starts it.
    GATHER_BATCH: with `gather_seconds`, the batch size a small batch may wait for.

    >>> from watchkeeper.store.engine import make_engine
    >>> w = Writer(make_engine("sqlite://")); w.start()
    >>> w.run_sync(lambda conn, items: [i * 2 for i in items], 21)
    42
    >>> w.stop()
    """

    BUSY_BATCH = 8
    GATHER_BATCH = 32

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 1000,
        max_queue: int = 20_000,
        clock: Clock | None = None,
        on_commit: Callable[[float, int], None] | None = None,
        process: WriterProcess | None = None,
        process_functions: frozenset[BatchFunction] = frozenset(),
        process_when_busy: bool = False,
        process_idle_seconds: float = 60.0,
        gather_seconds: float = 0.0,
        coming: Callable[[], int] | None = None,
    ) -> None:
        self.engine = for_writing(engine)
        # Batches of `process_functions` run in `process` (see store/writer_process.py), the rest here.
        # With `process_when_busy` the process runs only under load: it starts when a batch holds
        # BUSY_BATCH of those jobs (batches grow with the request rate) and stops after
        # `process_idle_seconds` without one; until it is ready they run here. An idle server then
        # does without the process's memory, and a busy one still writes outside its GIL.
        self.process = process
        self.process_functions = process_functions if process is not None else frozenset()
        self.process_when_busy = process_when_busy
        self.process_idle_seconds = process_idle_seconds
        self._last_busy = float("-inf")
        # Group commit waits up to `gather_seconds` for a small batch to grow while `coming()` says
        # more jobs are on their way (ingest: envelopes in the processor processes), as PostgreSQL's
        # commit_delay does. Every transaction has a fixed cost (a dozen statements, the commit, a
        # round trip to the writer process): 8 events a batch cost 357 µs of writer CPU each, 32 cost
        # 214 µs. When nothing is coming the batch commits at once, so a lone request never waits.
        self.gather_seconds = gather_seconds
        self._coming = coming
        self.max_batch = max_batch
        self.clock = clock or SystemClock()
        self.stats = WriterStats()
        self._on_commit = on_commit
        self._queue: queue.Queue[_Job[Any] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        if self.process is not None and not self.process_when_busy:
            self.process.start()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="watchkeeper-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything queued, then stop."""
        if not self.running:
            return
        self._stopping = True
        self._queue.put(None)
        assert self._thread is not None
        self._thread.join(timeout)
        self._thread = None
        # A submit that raced with stop() may have queued after the drain: fail it, never leave it waiting.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.start():
                _deliver([job], [WriterStopped("the writer stopped before this write ran")], [True])
        if self.process is not None:
            self.process.stop()

    def submit(self, function: BatchFunction, item: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._enqueue(_Job(function, item, future=future))
        return future

    async def run(self, function: BatchFunction, item: Any) -> Any:
        """Queue `item` for `function` and wait until its transaction has committed."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._enqueue(_Job(function, item, waiter=waiter, loop=loop))
        return await waiter

    def _enqueue(self, job: _Job[Any]) -> None:
        if self._stopping or not self.running:
            raise WriterStopped("the writer is not running")
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise WriterOverloaded(f"write queue is full ({self._queue.maxsize} jobs)") from None

    def run_sync(self, function: BatchFunction, item: Any, timeout: float | None = 60.0) -> Any:
        return self.submit(function, item).result(timeout)

    def _take_batch(self, first: _Job[Any]) -> tuple[list[_Job[Any]], bool]:
        jobs = [first]
        stop = False
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            jobs.append(job)
        return jobs, stop

    def _gather(self, jobs: list[_Job[Any]]) -> bool:
        """Add jobs that arrive within `gather_seconds` while more are coming; True on the stop marker."""
        assert self._coming is not None
        deadline = self.clock.monotonic() + self.gather_seconds
        while len(jobs) < self.GATHER_BATCH and self._coming() > 0:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                return True
            jobs.append(job)
        return False

    def _loop(self) -> None:
        while True:
            if self.process_when_busy and self.process is not None and self.process.ready:
                try:
                    first = self._queue.get(timeout=self.process_idle_seconds / 4)
                except queue.Empty:
                    self._retire_idle_process()
                    continue
            else:
                first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._take_batch(first)
            if not stop and self._coming is not None and self.gather_seconds > 0 and len(jobs) < self.GATHER_BATCH:
                stop = self._gather(jobs)
            self._commit(jobs)
            if stop:
                # Drain what was queued before the stop marker arrived.
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        return
                    if job is not None:
                        self._commit([job])

    def _run_jobs(self, conn: Connection, jobs: list[_Job[Any]]) -> list[Any]:
        by_function: dict[BatchFunction, list[int]] = {}
        for index, job in enumerate(jobs):
            by_function.setdefault(job.function, []).append(index)
        results: list[Any] = [None] * len(jobs)
        for function, indexes in by_function.items():
            out = function(conn, [jobs[i].item for i in indexes])
            if len(out) != len(indexes):
                raise RuntimeError(f"{function!r} returned {len(out)} results for {len(indexes)} items")
            for i, result in zip(indexes, out, strict=True):
                results[i] = result
        return results

    def _commit(self, jobs: list[_Job[Any]]) -> None:
        jobs = [job for job in jobs if job.start()]
        if not jobs:
            return
        apart = [job for job in jobs if job.function in self.process_functions]
        if apart and self.process_when_busy:
            assert self.process is not None
            if len(apart) >= self.BUSY_BATCH:
                self._last_busy = self.clock.monotonic()
                if not self.process.ready:
                    self.process.start_in_background()
            if not self.process.ready:
                apart = []
            else:
                self._retire_idle_process()
                if not self.process.ready:
                    apart = []
        if apart:
            self._commit_in_process(apart)
            jobs = [job for job in jobs if job.function not in self.process_functions]
            if not jobs:
                return
        self._commit_here(jobs)

    def _retire_idle_process(self) -> None:
        assert self.process is not None
        if self.process.ready and self.clock.monotonic() - self._last_busy > self.process_idle_seconds:
            log.info("writes are quiet: stopping the writer process until the next burst")
            self.process.retire()

    def _commit_in_process(self, jobs: list[_Job[Any]]) -> None:
        """One transaction per batch function in the writer process; on failure, each job alone."""
        assert self.process is not None
        by_function: dict[BatchFunction, list[_Job[Any]]] = {}
        for job in jobs:
            by_function.setdefault(job.function, []).append(job)
        for function, group in by_function.items():
            started = self.clock.monotonic()
            try:
                results = self.process.run(function, [job.item for job in group])
            except ConnectionError as exc:
                self.stats.failed_batches += 1
                error = WriterUnavailable(str(exc))
                _deliver(group, [error] * len(group), [True] * len(group))
                continue
            except Exception as exc:
                self.stats.failed_batches += 1
                if len(group) == 1:
                    log.warning("write failed: %s", exc)
                    _deliver(group, [exc], [True])
                    continue
                log.warning("batch of %d writes failed (%s); retrying each alone", len(group), exc)
                outcomes = [self._run_alone_in_process(job) for job in group]
                _deliver(group, [outcome for outcome, _ in outcomes], [failed for _, failed in outcomes])
                continue
            self._committed(started, len(group))
            _deliver(group, results, [False] * len(group))

    def _run_alone_in_process(self, job: _Job[Any]) -> tuple[Any, bool]:
        assert self.process is not None
        try:
            (result,) = self.process.run(job.function, [job.item])
        except ConnectionError as exc:
            return WriterUnavailable(str(exc)), True
        except Exception as exc:
            return exc, True
        return result, False

    def _committed(self, started: float, jobs: int) -> None:
        elapsed = self.clock.monotonic() - started
        self.stats.batches += 1
        self.stats.jobs += jobs
        self.stats.last_commit_seconds = elapsed
        if self._on_commit is not None:
            self._on_commit(elapsed, jobs)

    def _commit_here(self, jobs: list[_Job[Any]]) -> None:
        started = self.clock.monotonic()
        try:
            with self.engine.begin() as conn:
                results = self._run_jobs(conn, jobs)
        except Exception as exc:
            self.stats.failed_batches += 1
            if len(jobs) == 1:
                log.warning("write failed: %s", exc)
                _deliver(jobs, [exc], [True])
                return
            log.warning("batch of %d writes failed (%s); retrying each alone", len(jobs), exc)
            outcomes = [self._commit_single(job) for job in jobs]
            _deliver(jobs, [outcome for outcome, _ in outcomes], [failed for _, failed in outcomes])
            return
        self._committed(started, len(jobs))
        _deliver(jobs, results, [False] * len(jobs))

    def _commit_single(self, job: _Job[Any]) -> tuple[Any, bool]:
        """Run one job in a transaction of its own: (result, False) or (exception, True)."""
        try:
            with self.engine.begin() as conn:
                (result,) = self._run_jobs(conn, [job])
        except Exception as exc:
            return exc, True
        return result, False


def call_each(conn: Connection, functions: Sequence[Callable[[Connection], Any]]) -> list[Any]:
    """Batch function for one-off writes: each item is a function of the connection.

    >>> # await writer.run(call_each, lambda conn: conn.execute(...).rowcount)
    """
    return [function(conn) for function in functions]
