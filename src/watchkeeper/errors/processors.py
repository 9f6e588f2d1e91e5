"""Processor processes: normalising, scrubbing and grouping events on every core.

Processing an event is pure CPU (about half a millisecond for a typical 25 KB error event) and Python
runs one thread at a time, so one process tops out at one core. The ingest endpoints therefore hand
the event and transaction items of each envelope to a small pool of child processes, while the server
process keeps what must stay in one place: HTTP, authentication, quotas and the one database writer.
The 200 is still sent only after the writer has committed what the processor returned.

Transport: one socket pair per child, length-prefixed pickles (the framing of
`multiprocessing.connection.Connection`, which the child uses directly). Jobs queued during one turn of the event
loop travel as one message, so a busy server pays one system call for many envelopes. A child that
dies (killed, out of memory) fails only the jobs it held — their requests get a 503 and were never
acknowledged — and is started again.

The pool is elastic: it starts `min_size` children (one by default, so an idle server stays small)
and starts more, up to `size`, while envelopes queue up behind the busiest ones; a child beyond
`min_size` that found no queue for `idle_seconds` is stopped again.

Children are new interpreters (`python -m watchkeeper.errors.processors <fd>`), not forks: the server
process runs threads (the writer) by the time the pool starts. They import only the processing modules
(no web framework, no database driver, not even the settings): about 26 MB each. multiprocessing's
spawn would also re-import the server's main module and start a resource-tracker process (+20 MB).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from watchkeeper.errors.processing import IngestError
from watchkeeper.lib.children import reap, start_child
from watchkeeper.lib.periodic import repeat

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")
_HEADER = struct.Struct("!i")  # multiprocessing.Connection's frame header for messages under 2 GiB
_PICKLE = pickle.HIGHEST_PROTOCOL
# Processors run at a lower CPU priority than the server process and the writer process. When ingest
# uses every core, those two are the narrow part of the pipeline (one event loop for all requests, one
# writer for all commits): a processor that holds a core while the event loop waits to answer, or the
# writer waits to commit, idles the whole pipeline. It also keeps the API, the web pages and the health
# checks answering promptly under an ingest flood. Niceness only ever lowers our own priority.
PROCESSOR_NICENESS = 10


class ProcessorUnavailable(Exception):
    """The job could not be processed (its processor died, or the pool is full or stopped): retry later."""


class ProcessorFailed(Exception):
    """Processing raised an unexpected error (a bug): the message carries the child's description."""


def _child_main(fd: int) -> None:
    """Run jobs from the socket ``fd`` until the server closes its end (or dies)."""
    os.nice(PROCESSOR_NICENESS)
    conn = Connection(fd)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        jobs: list[tuple[int, Callable[[Any], Any], Any]] = pickle.loads(message)
        results: list[tuple[int, bool, Any]] = []
        for job_id, function, job in jobs:
            try:
                results.append((job_id, True, function(job)))
            except IngestError as exc:  # the request's own fault: its answer travels back
                results.append((job_id, False, exc))
            except Exception as exc:  # a bug in processing must fail one request, not the child
                results.append((job_id, False, ProcessorFailed(f"{type(exc).__name__}: {exc}")))
        conn.send_bytes(pickle.dumps(results, _PICKLE))


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes]
    writer: asyncio.StreamWriter
    reader_task: asyncio.Task[None] | None = None
    # job id -> future, for the jobs this child holds
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    outbox: list[tuple[int, Callable[[Any], Any], Any]] = field(default_factory=list)
    retiring: bool = False


class ProcessorPool:
    """``size`` processor processes driven from the event loop.

    >>> import asyncio
    >>> from watchkeeper.errors.envelope import EnvelopeItem
    >>> from watchkeeper.errors.processing import ItemsJob, process_items
    >>> from watchkeeper.errors.scrubbing import ScrubbingRules
    >>> async def demo():
    ...     pool = ProcessorPool(1)
    ...     await pool.start()
    ...     item = EnvelopeItem("event", {}, b'{"message": "hi"}')
    ...     job = ItemsJob(1, 1.7e9, [item], None, None, ScrubbingRules(), {"event": 1 << 20})
    ...     done = await pool.process(process_items, job)
    ...     await pool.stop()
    ...     return done.records.events[0].title
    >>> asyncio.run(demo())
    'hi'
    """

    # A job that would wait behind this many others in the least busy child asks for one more child.
    GROW_AT = 8

    def __init__(
        self, size: int, *, min_size: int | None = None, max_pending: int = 10_000, idle_seconds: float = 60.0
    ) -> None:
        if size < 1:
            raise ValueError("a processor pool needs at least one process")
        self.size = size
        self.min_size = size if min_size is None else max(1, min(min_size, size))
        self.max_pending = max_pending
        self.idle_seconds = idle_seconds
        self.restarts = 0
        self.retired = 0
        self._children: list[_Child] = []
        self._next_id = 0
        self._flush_scheduled = False
        self._stopping = False
        self._growing = False
        self._last_queue = 0.0
        self._shrink_task: asyncio.Task[None] | None = None
        self._grow_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> int:
        return len(self._children)

    @property
    def pids(self) -> list[int]:
        return [child.process.pid for child in self._children]

    @property
    def pending(self) -> int:
        return sum(len(child.pending) for child in self._children)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._children = [await self._spawn(index) for index in range(self.min_size)]
        self._last_queue = self._loop.time()
        if self.size > self.min_size:
            self._shrink_task = asyncio.create_task(self._shrink_when_idle())

    async def stop(self) -> None:
        self._stopping = True
        if self._shrink_task is not None:
            self._shrink_task.cancel()
            self._shrink_task = None
        for child in self._children:
            self._fail(child, ProcessorUnavailable("the server is shutting down"))
            if child.reader_task is not None:
                child.reader_task.cancel()
            child.writer.close()
        for child in self._children:
            await asyncio.get_running_loop().run_in_executor(None, reap, child.process)
        self._children = []

    async def process(self, function: Callable[[J], R], job: J) -> R:
        """``function(job)`` in a child. ``function`` must be a module-level function (it travels by
        name) and job and result picklable. Raises what ``function`` raised if it was an IngestError,
        ProcessorFailed for any other error, ProcessorUnavailable if no child could run it."""
        if self._stopping or not self._children:
            raise ProcessorUnavailable("the processor pool is not running")
        if self.pending >= self.max_pending:
            raise ProcessorUnavailable(f"{self.max_pending} envelopes are waiting to be processed")
        assert self._loop is not None
        child = min(self._children, key=lambda c: len(c.pending))
        if len(child.pending) >= self.GROW_AT:
            self._last_queue = self._loop.time()
            if not self._growing and len(self._children) < self.size:
                self._growing = True
                self._grow_task = asyncio.create_task(self._grow())
        self._next_id += 1
        future: asyncio.Future[R] = self._loop.create_future()
        child.pending[self._next_id] = future
        child.outbox.append((self._next_id, function, job))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        for child in self._children:
            if not child.outbox:
                continue
            jobs, child.outbox = child.outbox, []
            data = pickle.dumps(jobs, _PICKLE)
            # The stream buffers what the socket cannot take yet: the event loop never blocks on a child.
            child.writer.write(_HEADER.pack(len(data)) + data)

    async def _grow(self) -> None:
        try:
            child = await self._spawn(len(self._children))
            if self._stopping:
                child.writer.close()
                await asyncio.get_running_loop().run_in_executor(None, reap, child.process)
                return
            self._children.append(child)
            # Counts as needed now: a start slower than idle_seconds must not retire it at once.
            self._last_queue = asyncio.get_running_loop().time()
            log.info("processing backlog: started processor %s of at most %s", len(self._children), self.size)
        except Exception:
            log.exception("could not start another processor")
        finally:
            self._growing = False

    async def _shrink_when_idle(self) -> None:
        every = min(self.idle_seconds / 4, 15.0)
        await repeat("retiring idle processors", self._retire_one_idle, every, first_after=every, logger=log)

    async def _retire_one_idle(self) -> None:
        loop = asyncio.get_running_loop()
        if len(self._children) <= self.min_size or loop.time() - self._last_queue < self.idle_seconds:
            return
        child = self._children[-1]
        if child.pending or child.outbox:
            return
        # Out of the list first, so no new job goes to it; its reader then sees the socket close.
        self._children.remove(child)
        self.retired += 1
        child.retiring = True
        child.writer.close()
        await loop.run_in_executor(None, reap, child.process)
        log.info("processors idle: stopped one, %s left", len(self._children))

    async def _spawn(self, index: int) -> _Child:
        process, ours = await asyncio.get_running_loop().run_in_executor(
            None, start_child, "watchkeeper.errors.processors"
        )
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        child = _Child(index, process, writer)
        child.reader_task = asyncio.create_task(self._read(child, reader))
        return child

    async def _read(self, child: _Child, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (length,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                results: list[tuple[int, bool, Any]] = pickle.loads(await reader.readexactly(length))
                for job_id, ok, value in results:
                    future = child.pending.pop(job_id, None)
                    if future is None or future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if self._stopping or child.retiring:
            return
        code = child.process.poll()
        log.error("processor %s stopped (exit code %s); starting a new one", child.index, code)
        self._fail(child, ProcessorUnavailable("the event processor stopped while processing this request"))
        child.writer.close()
        await asyncio.get_running_loop().run_in_executor(None, reap, child.process)
        self.restarts += 1
        replacement = await self._spawn(child.index)
        if child in self._children:
            self._children[self._children.index(child)] = replacement
        else:  # the pool stopped or shrank meanwhile
            replacement.writer.close()
            await asyncio.get_running_loop().run_in_executor(None, reap, replacement.process)

    @staticmethod
    def _fail(child: _Child, error: Exception) -> None:
        for future in child.pending.values():
            if not future.done():
                future.set_exception(error)
        child.pending.clear()
        child.outbox.clear()


if __name__ == "__main__":
    # Through the imported module, so that the exceptions it sends back pickle under their real names.
    from watchkeeper.errors import processors

    processors._child_main(int(sys.argv[1]))

