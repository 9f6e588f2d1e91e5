"""The one clock every component takes, so tests of windows and retention run instantly."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

# The latest time a client may send (epoch seconds): the end of year 9999, the last second Python's
# datetime (and so every page, report and schedule that turns a time into a date) can hold. Earlier
# than 1970 or later than this is a typo or a probe, answered 422 naming the field.
MAX_EPOCH = 253_402_300_799.0


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time as epoch seconds."""

    def monotonic(self) -> float:
        """A clock for measuring durations; never goes back."""

    async def sleep(self, seconds: float) -> None:
        """Wait until `monotonic()` has moved on by ``seconds`` (pacing loops: see lib/periodic.py)."""


class SystemClock:
    """The real clock.

    >>> SystemClock().now() > 1.7e9
    True
    """

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to, for tests and back-tests.

    >>> clock = ManualClock(1_000.0); clock.advance(30); clock.now()
    1030.0
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._mono = 0.0
        # Coroutines in `sleep`: when they wake (monotonic), their loop and their future.
        self._sleepers: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        """Wait until `advance` or `set` moves the clock on by ``seconds`` (from any thread); a
        sleep of 0 or less only lets the other tasks run, as `asyncio.sleep(0)` does."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        sleeper = (self._mono + seconds, loop, loop.create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper[2]
        finally:
            self._sleepers.remove(sleeper)

    @property
    def sleeping(self) -> int:
        """How many coroutines wait in `sleep` (tests wait for a loop to reach its sleep)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
        self._wake()

    def set(self, epoch: float) -> None:
        self._mono += max(0.0, epoch - self._now)
        self._now = epoch
        self._wake()

    def _wake(self) -> None:
        for until, loop, future in list(self._sleepers):
            if until <= self._mono:
                loop.call_soon_threadsafe(_done, future)


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
