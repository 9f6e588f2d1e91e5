"""A child process that runs the writer's heaviest batches (ingest) on its own database connection.

Why: the writer thread shares the server process's GIL with the event loop. Every SQLite call releases
the GIL and must win it back from a busy event loop, so a batch of ingest writes that takes 3 ms on its
own took 12 ms in the server (measured in docs/benchmarks.md); the writer, not the CPU, capped ingest.
In a process of its own the same batch runs at full speed.

The writer thread stays the one place that orders writes: it sends a batch here and waits for the
commit before it starts anything else, so two write transactions never overlap (SQLite's single writer
is respected and nothing waits on a lock). A 2xx is still sent only after this process committed.

Transport: a Unix socket pair, length-prefixed pickles (multiprocessing.connection.Connection); the batch
function travels by name. If the child dies, the batch it held fails (WriterUnavailable: the requests
get a 503, nothing was acknowledged) and the next batch starts a new child.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from watchkeeper.lib.children import reap, start_child

log = logging.getLogger(__name__)

_PICKLE = pickle.HIGHEST_PROTOCOL


class WriterProcessFailed(Exception):
    """A batch function raised in the child; the message describes the original error."""


class WriterProcess:
    """Runs batch functions ``function(conn, items)`` in a child process, one batch at a time.

    >>> # process = WriterProcess("sqlite:////data/watchkeeper.db"); process.run(save_envelopes, records)
    """

    def __init__(self, database_url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.database_url = database_url
        self.sqlite_synchronous = sqlite_synchronous
        self.restarts = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._starting = False
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def ready(self) -> bool:
        return self._conn is not None

    def start(self) -> None:
        with self._lock:
            self._stopped = False
            if self._child is None:
                self._spawn()

    def start_in_background(self) -> None:
        """Start the child from another thread (an interpreter takes a few hundred milliseconds to
        start); `ready` turns true when it can take batches. Meanwhile the caller writes elsewhere."""
        with self._lock:
            if self._child is not None or self._starting:
                return
            self._starting = True
        threading.Thread(target=self._start_quietly, name="watchkeeper-writer-process-start", daemon=True).start()

    def _start_quietly(self) -> None:
        try:
            child, ours = start_child("watchkeeper.store.writer_process")
            conn = Connection(ours.detach())
            conn.send_bytes(pickle.dumps((self.database_url, self.sqlite_synchronous), _PICKLE))
        except Exception:
            log.exception("could not start the writer process; ingest batches stay in the writer thread")
            with self._lock:
                self._starting = False
            return
        with self._lock:
            self._starting = False
            if self._child is None and not self._stopped:
                self._child, self._conn = child, conn
                return
        conn.close()
        reap(child, 10)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._close()

    def retire(self) -> None:
        """Stop the child but stay usable: `start_in_background` starts a new one."""
        with self._lock:
            self._close()

    def run(self, function: Any, items: Sequence[Any]) -> list[Any]:
        """``function(conn, items)`` in one transaction of the child; its results, or its exception.

        Raises ConnectionError if the child died before answering (then nothing of the batch is known
        to be committed, and nothing of it was acknowledged).
        """
        with self._lock:
            if self._conn is None:
                self._spawn()
            assert self._conn is not None
            try:
                self._conn.send_bytes(pickle.dumps((function, list(items)), _PICKLE))
                ok, value = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError) as exc:
                log.error("writer process stopped (exit code %s); a new one starts with the next batch",
                          self._child.poll() if self._child else None)
                self._close()
                self.restarts += 1
                raise ConnectionError(f"the writer process stopped: {exc or type(exc).__name__}") from None
        if not ok:
            raise value
        return list(value)

    def _spawn(self) -> None:
        self._child, ours = start_child("watchkeeper.store.writer_process")
        self._conn = Connection(ours.detach())
        # Over the socket, not the command line: a database URL can hold a password, and `ps` shows
        # every process's arguments to every user.
        self._conn.send_bytes(pickle.dumps((self.database_url, self.sqlite_synchronous), _PICKLE))

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the child reads end-of-file and exits
            self._conn = None
        if self._child is not None:
            reap(self._child, 10)
            self._child = None


def _child_main(fd: int) -> None:
    from watchkeeper.store.engine import for_writing, make_engine

    conn = Connection(fd)
    try:
        database_url, sqlite_synchronous = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    engine = for_writing(make_engine(database_url, sqlite_synchronous=sqlite_synchronous, pool_size=1, cache_mib=64))
    while True:
        try:
            function, items = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            engine.dispose()
            return
        try:
            with engine.begin() as db:
                answer: tuple[bool, Any] = (True, function(db, items))
        except Exception as exc:  # the writer retries each item alone, like a failed local batch
            answer = (False, exc)
        try:
            data = pickle.dumps(answer, _PICKLE)
        except Exception:  # an exception that does not pickle (driver errors can hold connections)
            data = pickle.dumps((False, WriterProcessFailed(f"{type(answer[1]).__name__}: {answer[1]}")), _PICKLE)
        try:
            conn.send_bytes(data)
        except OSError:  # the server died (kill -9) after we committed: nobody to answer
            engine.dispose()
            return


if __name__ == "__main__":
    # Through the imported module, so that what it sends back pickles under its real names.
    from watchkeeper.store import writer_process

    writer_process._child_main(int(sys.argv[1]))
