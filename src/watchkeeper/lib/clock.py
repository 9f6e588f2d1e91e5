"""The one clock every component takes, so tests of windows and retention run instantly."""

from __future__ import annotations

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


class SystemClock:
    """The real clock.

    >>> SystemClock().now() > 1.7e9
    True
    """

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to, for tests and back-tests.

    >>> clock = ManualClock(1_000.0); clock.advance(30); clock.now()
    1030.0
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def set(self, epoch: float) -> None:
        self._mono += max(0.0, epoch - self._now)
        self._now = epoch
