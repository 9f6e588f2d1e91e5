"""The one "repeat, log, back off" loop of every background job (uptime sweeps, alert rounds, retention…).

A step that fails is logged with the job's name and tried again later, each failure in a row doubling
the wait up to a cap: a database that is down is asked every few minutes, not every second, and the
log holds one traceback per try instead of a flood. The first success goes back to the normal pace.
Cancelling the task (the lease lost, the server stopping) stops the loop at once, also inside a step:
`asyncio.CancelledError` is not an `Exception`, so it is never taken for a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from watchkeeper.lib.clock import Clock, SystemClock

log = logging.getLogger(__name__)

# The longest wait after failures in a row: a job still notices a recovered database within 5 minutes.
MAX_BACKOFF_SECONDS = 300.0

Step = Callable[[], Awaitable[float | None]]


def backoff(every: float, failures: int, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """The wait after ``failures`` failed steps in a row: ``every``, then doubling, at most ``cap``
    (never less than ``every``).

    >>> [backoff(5, n, cap=60) for n in (1, 2, 3, 4, 5)]
    [5, 10, 20, 40, 60]
    """
    return min(every * 2 ** min(failures - 1, 60), max(cap, every))


async def repeat(name: str, step: Step, every: float, *, clock: Clock | None = None,
                 wake: asyncio.Event | None = None, first_after: float = 0.0,
                 cap: float = MAX_BACKOFF_SECONDS, logger: logging.Logger = log) -> NoReturn:
    """Run ``step`` for ever, ``every`` seconds apart; a step may return how long to wait instead (0:
    it left work for the next step at once). A failure is logged as "<name> failed" and backs off (see
    `backoff`). With ``wake``, setting that event ends a wait early (it is cleared before each step).
    The first step runs after ``first_after`` seconds (at once by default).

    The loop is paced by ``clock``'s `sleep`: the real one by default, also in servers running on a
    ManualClock (what rules and windows see), so their loops keep turning; tests of a loop itself pass
    a ManualClock and move it on.

    Example: ``asyncio.create_task(repeat("uptime sweep", uptime.sweep_once, 5.0))``.
    """
    clock = clock or SystemClock()
    failures = 0
    if first_after > 0:
        await _pause(clock, first_after, wake)
    while True:
        if wake is not None:
            wake.clear()
        wait: float | None
        try:
            wait = await step()
        except Exception:
            failures += 1
            wait = backoff(every, failures, cap)
            logger.exception("%s failed (%d in a row); trying again in %.3g s", name, failures, wait)
        else:
            if failures:
                logger.info("%s works again after %d failures", name, failures)
            failures = 0
        await _pause(clock, every if wait is None else wait, wake)


async def _pause(clock: Clock, seconds: float, wake: asyncio.Event | None) -> None:
    if wake is None or seconds <= 0:
        await clock.sleep(seconds)
        return
    sleeping = asyncio.ensure_future(clock.sleep(seconds))
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in (sleeping, woken):
            waiting.cancel()
        await asyncio.gather(sleeping, woken, return_exceptions=True)
