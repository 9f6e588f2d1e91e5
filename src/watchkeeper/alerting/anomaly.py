"""Anomaly rules: a project's count over a window against its own baseline, for "error spike" (up) and
"traffic drop" (down) alerts that a fixed threshold gets wrong on busy and quiet projects alike.

Two baselines, both from the per-minute project counts:

- `hour_of_week`: the same window at the same time of week on each of the last `days // 7` weeks
  (Monday 09:00-10:00 is compared with the previous Mondays 09:00-10:00).
- `ewma`: an exponentially weighted moving average and variance over the `history` windows just
  before the current one (alpha `alpha`): the recent trend, without weekly seasonality.

The score is z = (current - mean) / sd. Counts are roughly Poisson, so the deviation is at least
√mean (and at least 1): a baseline of identical values does not make every small change infinite.
`direction: up` fires at z ≥ `z_threshold` with at least `min_volume` in the current window;
`direction: down` fires at z ≤ -`z_threshold` when the baseline mean is at least `min_volume`, so a
quiet project neither alerts on a handful of errors nor on a drop from 2 to 0. A project whose
counts do not reach back to the oldest baseline window has no value (no alert) until they do.

The current window is the last `window_minutes` whole minutes, without the minute in progress (a
partial minute would look like a drop).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, func, select

from watchkeeper.errors.tables import project_minute_counts

MAX_SECONDS = 366 * 86400
WEEK_MINUTES = 7 * 1440


class AnomalySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Literal["errors", "transactions", "rejected"]
    baseline: Literal["hour_of_week", "ewma"] = "hour_of_week"
    direction: Literal["up", "down"] = Field("up", description="up: spike; down: drop")
    window_minutes: int = Field(60, ge=1, le=1440, description="the current value: count over this window")
    days: int = Field(28, ge=7, le=91, description="hour_of_week: look back this many days (whole weeks)")
    history: int = Field(24, ge=3, le=500, description="ewma: windows before the current one")
    alpha: float = Field(0.3, gt=0, le=1, description="ewma: weight of the newest window")
    z_threshold: float = Field(3.0, gt=0, le=100, allow_inf_nan=False)
    min_volume: int = Field(10, ge=0, le=1_000_000_000, description=(
        "up: the current window needs this many; down: the baseline mean needs this many"))
    for_seconds: float = Field(0, ge=0, le=MAX_SECONDS)
    keep_firing_for_seconds: float = Field(0, ge=0, le=MAX_SECONDS)

    @model_validator(mode="after")
    def _lookback_fits(self) -> AnomalySpec:
        if self.baseline == "ewma" and self.history * self.window_minutes > 91 * 1440:
            raise ValueError("ewma: history x window_minutes must stay within 91 days")
        return self

    @property
    def weeks(self) -> int:
        return self.days // 7

    def lookback_minutes(self) -> int:
        """How far before the current window the baseline reaches (the oldest minute it reads)."""
        if self.baseline == "hour_of_week":
            return self.weeks * WEEK_MINUTES
        return self.history * self.window_minutes


@dataclass(frozen=True, slots=True)
class Score:
    value: float  # the current window's count
    mean: float
    sd: float
    z: float
    breached: bool


def ewma(values: Sequence[float], alpha: float) -> tuple[float, float]:
    """Mean and variance, exponentially weighted, oldest value first.

    >>> ewma([10, 10, 10], 0.5)
    (10.0, 0.0)
    """
    mean, variance = float(values[0]), 0.0
    for value in values[1:]:
        delta = value - mean
        mean += alpha * delta
        variance = (1 - alpha) * (variance + alpha * delta * delta)
    return mean, variance


def score(spec: AnomalySpec, current: float, baseline: Sequence[float]) -> Score:
    """The current count against its baseline windows (oldest first).

    >>> spec = AnomalySpec(metric="errors", z_threshold=3, min_volume=10)
    >>> score(spec, 40, [10, 12, 9, 11]).breached, score(spec, 14, [10, 12, 9, 11]).breached
    (True, False)
    """
    if spec.baseline == "ewma":
        mean, variance = ewma(baseline, spec.alpha)
        spread = math.sqrt(variance)
    else:
        mean, spread = statistics.fmean(baseline), statistics.pstdev(baseline)
    sd = max(spread, math.sqrt(max(mean, 1.0)))
    z = (current - mean) / sd
    if spec.direction == "up":
        breached = z >= spec.z_threshold and current >= spec.min_volume
    else:
        breached = z <= -spec.z_threshold and mean >= spec.min_volume
    return Score(current, mean, sd, z, breached)


def windows(spec: AnomalySpec, last_minute: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The current window and the baseline windows (first and last minute, inclusive; oldest first) when
    `last_minute` is the minute in progress."""
    width = spec.window_minutes
    current = (last_minute - width, last_minute - 1)
    if spec.baseline == "hour_of_week":
        shifts = [k * WEEK_MINUTES for k in range(spec.weeks, 0, -1)]
    else:
        shifts = [k * width for k in range(spec.history, 0, -1)]
    return current, [(current[0] - shift, current[1] - shift) for shift in shifts]


def _condition(metric: str) -> list[object]:
    t = project_minute_counts
    if metric == "rejected":
        return [t.c.outcome != "accepted"]
    return [t.c.category == ("error" if metric == "errors" else "transaction"), t.c.outcome == "accepted"]


def window_sums(conn: Connection, metric: str, project_ids: Collection[int],
                ranges: Sequence[tuple[int, int]]) -> dict[int, list[float]]:
    """Per project, the count of `metric` in each of `ranges` (one indexed query per range)."""
    t = project_minute_counts
    found = {p: [0.0] * len(ranges) for p in project_ids}
    for index, (first, last) in enumerate(ranges):
        query = (select(t.c.project_id, func.sum(t.c.count))
                 .where(t.c.project_id.in_(sorted(project_ids)), t.c.minute >= first, t.c.minute <= last,
                        *_condition(metric))  # type: ignore[arg-type]
                 .group_by(t.c.project_id))
        for project_id, total in conn.execute(query):
            found[project_id][index] = float(total or 0)
    return found


def first_minutes(conn: Connection, project_ids: Collection[int]) -> dict[int, int | None]:
    """The oldest minute each project has any count for (by the primary key's project_id prefix)."""
    t = project_minute_counts
    return {p: conn.execute(select(func.min(t.c.minute)).where(t.c.project_id == p)).scalar()
            for p in sorted(project_ids)}


def project_scores(conn: Connection, spec: AnomalySpec, project_ids: Collection[int],
                   now: float) -> dict[int, Score | None]:
    """Each project's score now (None: not enough history)."""
    last_minute = int(now // 60)
    current, baseline = windows(spec, last_minute)
    sums = window_sums(conn, spec.metric, project_ids, [*baseline, current])
    firsts = first_minutes(conn, project_ids)
    scores: dict[int, Score | None] = {}
    for project_id in project_ids:
        first = firsts.get(project_id)
        if first is None or first > baseline[0][0]:
            scores[project_id] = None
            continue
        values = sums[project_id]
        scores[project_id] = score(spec, values[-1], values[:-1])
    return scores


def minute_counts(conn: Connection, metric: str, project_id: int, first: int, last: int) -> dict[int, int]:
    """A project's count of `metric` per minute in [first, last] (for the back-test)."""
    t = project_minute_counts
    query = (select(t.c.minute, func.sum(t.c.count))
             .where(t.c.project_id == project_id, t.c.minute >= first, t.c.minute <= last,
                    *_condition(metric))  # type: ignore[arg-type]
             .group_by(t.c.minute))
    return {int(minute): int(total) for minute, total in conn.execute(query)}
