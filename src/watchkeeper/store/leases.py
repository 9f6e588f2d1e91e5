"""Leases: one process at a time does a piece of background work, coordinated through the database.

Several `watchkeeper serve` processes can share one PostgreSQL database (`--role web|ingest|worker`,
or two complete servers for failover). Background work — uptime checks, alert evaluation and
delivery, retention — must then run in exactly one of them, or monitors are checked twice and alerts
sent twice. The process that holds the lease does the work; it renews the lease every third of its
term; the others wait, and take over once a holder has not renewed for a whole term (it died, or lost
the database). Taking and renewing is one conditional upsert, atomic on SQLite and PostgreSQL alike:
no home-made cluster protocol, no extra service.

Terms are measured with each process's wall clock, so the hosts' clocks must agree to well within a
term (30 s by default; NTP does this).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, Connection, Double, String, Table, or_, select, update

from watchkeeper.lib.periodic import repeat
from watchkeeper.store.dialect import upsert
from watchkeeper.store.schema import metadata

log = logging.getLogger(__name__)
R = TypeVar("R")
# How long stopped jobs get to finish (the uptime scheduler writes the results it gathered); within the
# 5 s the app's shutdown waits for the lease's task, which then still releases the lease.
STOP_SECONDS = 3.0

leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Double, nullable=False),
)


def holder_name() -> str:
    """Who we are, for the lease row and the logs: host, process id and a random part (pids repeat)."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def died_here(holder: str) -> bool:
    """Whether ``holder`` was a process on this host that no longer runs: a server restarted after a
    crash (kill -9, out of memory) need not wait out its own dead predecessor's term. Anything else —
    another host, a live process, a name we cannot read — counts as alive, and the term decides."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:100] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def acquire(conn: Connection, name: str, holder: str, *, now: float, term: float) -> bool:
    """Take or renew the lease ``name`` until ``now + term``; True if ``holder`` holds it now. A lease
    still in its term is taken over only from a holder that `died_here`.

    >>> from watchkeeper.store.engine import make_engine
    >>> engine = make_engine("sqlite://"); metadata.create_all(engine, tables=[leases])
    >>> with engine.begin() as conn:
    ...     acquire(conn, "work", "a", now=0, term=30), acquire(conn, "work", "b", now=10, term=30)
    (True, False)
    >>> with engine.begin() as conn:
    ...     acquire(conn, "work", "b", now=31, term=30)  # a did not renew in time
    True
    """
    until = now + term
    current = conn.scalar(select(leases.c.holder).where(leases.c.name == name))
    dead = [current] if current is not None and current != holder and died_here(current) else []
    stmt = upsert(conn, leases).values(name=name, holder=holder, expires_at=until)
    stmt = stmt.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"holder": holder, "expires_at": until},
        where=or_(leases.c.holder == holder, leases.c.expires_at < now, leases.c.holder.in_(dead)),
    )
    conn.execute(stmt)
    return conn.scalar(select(leases.c.holder).where(leases.c.name == name)) == holder


def release(conn: Connection, name: str, holder: str) -> bool:
    """Give the lease up at once (a clean shutdown), so a standby need not wait out the term; True if
    we held it."""
    done = conn.execute(update(leases).where(leases.c.name == name, leases.c.holder == holder).values(expires_at=0.0))
    return bool(done.rowcount)


@dataclass(frozen=True)
class Job(Generic[R]):
    """A domain's background work (uptime checks, alert delivery, retention…): ``run(runtime)`` as long
    as this process holds the background lease, cancelled when it loses it or stops. A domain adds its
    work by adding a Job to its list; nothing else starts background tasks.

    >>> async def sweep(runtime: object) -> None: ...
    >>> Job("uptime sweep", sweep).name
    'uptime sweep'
    """

    name: str
    run: Callable[[R], Coroutine[Any, Any, None]]


@dataclass
class Leadership(Generic[R]):
    """Runs ``jobs`` (each given ``runtime``) while this process holds lease ``name``; cancels them when
    it loses it, and starts each once again when it takes the lease back.

    ``write`` runs a function of a connection in a write transaction (the one writer); ``now`` is the
    wall clock. A renewal that fails (the database is unreachable, the writer is overloaded) keeps the
    work going until our own term ends, as no one else can take the lease before then.
    """

    name: str
    write: Callable[[Callable[[Connection], bool]], Awaitable[bool]]
    now: Callable[[], float]
    jobs: Sequence[Job[R]]
    runtime: R
    term: float = 30.0
    holder: str = field(default_factory=holder_name)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    held_until: float = 0.0
    leading: bool = False

    async def run(self) -> None:
        try:
            await repeat(f"the {self.name} lease", self.round, self.term / 3, logger=log)
        finally:
            await self._stop_work()
            if self.held_until > self.now():
                try:
                    await self.write(lambda conn: release(conn, self.name, self.holder))
                except Exception:  # shutting down: the term runs out by itself
                    log.warning("could not release the %s lease; a standby takes over when it expires", self.name)

    async def round(self) -> None:
        started = self.now()
        try:
            mine = await self.write(lambda conn: acquire(conn, self.name, self.holder, now=started, term=self.term))
        except Exception as exc:
            if self.leading and self.now() < self.held_until:
                log.warning("could not renew the %s lease (%s); still ours until it expires", self.name, exc)
                return
            mine = False
            log.warning("could not take the %s lease: %s", self.name, exc)
        if mine:
            self.held_until = started + self.term
            if not self.leading:
                log.info("%s: this process (%s) does the background work now", self.name, self.holder)
                self._start_work()
        elif self.leading:
            log.warning("%s: another process holds the lease now; stopping background work here", self.name)
            await self._stop_work()

    def _start_work(self) -> None:
        self.leading = True
        self.tasks = [asyncio.create_task(job.run(self.runtime), name=f"{self.name}: {job.name}")
                      for job in self.jobs]

    async def _stop_work(self) -> None:
        """Cancel every job and wait for them to finish (their `finally` writes what they gathered), so
        a lease taken back later never finds the previous run still going."""
        self.leading = False
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_SECONDS)
