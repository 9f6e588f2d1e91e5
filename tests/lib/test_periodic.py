"""The one background loop (lib/periodic.py), on a ManualClock: no test waits for real seconds."""

from __future__ import annotations

import asyncio
import logging

import pytest

from watchkeeper.lib.clock import ManualClock
from watchkeeper.lib.periodic import MAX_BACKOFF_SECONDS, backoff, repeat


async def asleep(clock: ManualClock) -> None:
    """Let the loop run until it waits on the clock again."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if clock.sleeping:
            return
    raise AssertionError("the loop never went to sleep")


async def moved(clock: ManualClock, seconds: float) -> None:
    """Move the clock on, and let the loop run until it waits again."""
    clock.advance(seconds)
    for _ in range(20):  # the wake-up is scheduled on the loop: let it arrive
        await asyncio.sleep(0)
    await asyncio.wait_for(asleep(clock), 5)


def test_it_runs_the_step_every_interval_of_the_clock() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        ran: list[float] = []

        async def step() -> None:
            ran.append(clock.monotonic())

        task = asyncio.create_task(repeat("sweep", step, 5.0, clock=clock))
        await asleep(clock)
        assert ran == [0.0]
        await moved(clock, 4.9)
        assert ran == [0.0]
        await moved(clock, 0.1)
        await moved(clock, 5.0)
        assert ran == [0.0, 5.0, 10.0]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_it_logs_each_failure_by_name_and_backs_off_until_a_step_works(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        ran: list[float] = []

        async def step() -> None:
            ran.append(clock.monotonic())
            if len(ran) <= 4:
                raise ConnectionError("database unreachable")

        task = asyncio.create_task(repeat("retention", step, 10.0, clock=clock, cap=45.0))
        await asleep(clock)
        for _ in range(14):  # 140 s, in steps of the normal interval
            await moved(clock, 10.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # Failures at 0, 10, 30, 70 (waits 10, 20, 40, then 45 the cap); works at 115, then every 10 s.
        assert ran == [0.0, 10.0, 30.0, 70.0, 120.0, 130.0, 140.0]

    with caplog.at_level(logging.INFO, logger="watchkeeper.lib.periodic"):
        asyncio.run(scenario())
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failed] == [
        "retention failed (1 in a row); trying again in 10 s",
        "retention failed (2 in a row); trying again in 20 s",
        "retention failed (3 in a row); trying again in 40 s",
        "retention failed (4 in a row); trying again in 45 s",
    ]
    assert all(r.exc_info and isinstance(r.exc_info[1], ConnectionError) for r in failed)
    assert "retention works again after 4 failures" in caplog.messages


def test_the_back_off_doubles_up_to_its_cap() -> None:
    assert [backoff(2.0, n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff(2.0, 50) == MAX_BACKOFF_SECONDS
    assert backoff(2.0, 10_000) == MAX_BACKOFF_SECONDS  # no overflow after days of failures
    assert backoff(600.0, 3) == 600.0  # a job slower than the cap keeps its own pace


def test_a_step_says_how_long_to_wait_and_zero_means_at_once() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        waits = iter([0.0, 0.0, 3.0])
        ran: list[float] = []

        async def step() -> float | None:
            ran.append(clock.monotonic())
            return next(waits, None)

        task = asyncio.create_task(repeat("responder", step, 60.0, clock=clock))
        await asleep(clock)
        assert ran == [0.0, 0.0, 0.0]  # a storm taken in three rounds, one after the other
        await moved(clock, 3.0)
        assert ran == [0.0, 0.0, 0.0, 3.0]
        await moved(clock, 59.0)
        assert ran == [0.0, 0.0, 0.0, 3.0]
        await moved(clock, 1.0)
        assert ran == [0.0, 0.0, 0.0, 3.0, 63.0]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_an_event_ends_the_wait_early() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        wake = asyncio.Event()
        ran: list[float] = []

        async def step() -> None:
            ran.append(clock.monotonic())

        task = asyncio.create_task(repeat("delivery", step, 30.0, clock=clock, wake=wake))
        await asleep(clock)
        await moved(clock, 1.0)
        wake.set()
        await moved(clock, 0.0)
        assert ran == [0.0, 1.0]
        assert not wake.is_set()
        await moved(clock, 30.0)  # and the normal pace from there
        assert ran == [0.0, 1.0, 31.0]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert clock.sleeping == 0  # nothing left waiting on the clock

    asyncio.run(scenario())


def test_cancelling_stops_it_inside_a_step_or_a_wait_without_logging_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        inside, cleaned = asyncio.Event(), []

        async def step() -> None:
            inside.set()
            try:
                await asyncio.Event().wait()  # a step that would never end
            finally:
                cleaned.append("step")

        task = asyncio.create_task(repeat("uptime checks", step, 1.0, clock=clock))
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == ["step"]

        async def quick() -> None:
            pass

        waiting = asyncio.create_task(repeat("sweep", quick, 1.0, clock=clock, wake=asyncio.Event()))
        await asleep(clock)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert clock.sleeping == 0

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_first_step_can_wait_and_an_event_can_end_that_wait() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        wake = asyncio.Event()
        ran: list[float] = []

        async def step() -> None:
            ran.append(clock.monotonic())

        late = asyncio.create_task(repeat("flush", step, 1.0, clock=clock, first_after=1.0))
        await asleep(clock)
        assert ran == []
        await moved(clock, 1.0)
        assert ran == [1.0]
        late.cancel()
        await asyncio.gather(late, return_exceptions=True)

        woken = asyncio.create_task(repeat("refresh", step, 30.0, clock=clock, wake=wake, first_after=30.0))
        await asleep(clock)
        wake.set()  # monitors changed: read them now
        await moved(clock, 0.0)
        assert ran == [1.0, 1.0]
        woken.cancel()
        await asyncio.gather(woken, return_exceptions=True)

    asyncio.run(scenario())
