"""What threshold rules watch: per-minute counts from each domain's minute-count tables, and the
durations of stored transactions.

One query per metric and evaluation round covers every rule on that metric: rows are grouped by
subject (project or issue) and minute, and each rule sums the minutes of its own window. Durations
(for `average` and `percentile`) are read per project from the transactions in the window, at most
MAX_DURATIONS of the newest, through the (project_id, timestamp) index.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select

from watchkeeper.errors.tables import issue_minute_counts, issues, project_minute_counts, transactions

if TYPE_CHECKING:
    from watchkeeper.alerting.rules import ThresholdSpec

# Bounds one rule's read of transaction rows (a window holding more is judged on its newest rows).
MAX_DURATIONS = 100_000


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per minute for one subject of a metric (a project, or an issue of a project)."""

    project_id: int
    subject: str  # "" for project metrics, "issue:<id>" for issue_events
    title: str
    minutes: dict[int, int]

    def total(self, first_minute: int, last_minute: int) -> int:
        return sum(n for minute, n in self.minutes.items() if first_minute <= minute <= last_minute)


def _project_counts(conn: Connection, metric: str, first_minute: int,
                    project_ids: Collection[int] | None) -> list[Series]:
    t = project_minute_counts
    query = select(t.c.project_id, t.c.minute, func.sum(t.c.count)).where(t.c.minute >= first_minute)
    if project_ids is not None:
        query = query.where(t.c.project_id.in_(list(project_ids)))
    if metric == "errors":
        query = query.where(t.c.category == "error", t.c.outcome == "accepted")
    elif metric == "transactions":
        query = query.where(t.c.category == "transaction", t.c.outcome == "accepted")
    else:  # rejected: anything not accepted (rate limited, invalid, too large)
        query = query.where(t.c.outcome != "accepted")
    per_project: dict[int, dict[int, int]] = defaultdict(dict)
    for project_id, minute, count in conn.execute(query.group_by(t.c.project_id, t.c.minute)):
        per_project[project_id][minute] = int(count)
    return [Series(p, "", "", minutes) for p, minutes in per_project.items()]


def _issue_counts(conn: Connection, first_minute: int, project_ids: Collection[int] | None) -> list[Series]:
    t = issue_minute_counts
    query = (select(t.c.issue_id, issues.c.project_id, issues.c.title, t.c.minute, t.c.count)
             .join(issues, issues.c.id == t.c.issue_id).where(t.c.minute >= first_minute))
    if project_ids is not None:
        query = query.where(issues.c.project_id.in_(list(project_ids)))
    rows = conn.execute(query)
    found: dict[int, Series] = {}
    for issue_id, project_id, title, minute, count in rows:
        series = found.get(issue_id)
        if series is None:
            series = found[issue_id] = Series(project_id, f"issue:{issue_id}", title, {})
        series.minutes[minute] = int(count)
    return list(found.values())


def read_counts(conn: Connection, metric: str, first_minute: int,
                project_ids: Collection[int] | None = None) -> list[Series]:
    """Every subject of `metric` with counts since `first_minute` (epoch minute), of `project_ids` (None: all)."""
    if metric == "issue_events":
        return _issue_counts(conn, first_minute, project_ids)
    return _project_counts(conn, metric, first_minute, project_ids)


def recent_totals(conn: Connection, since_minute: int) -> dict[int, int]:
    """Everything counted per project since `since_minute`: when it moves, the project's threshold rules
    are worth a look before the next full round."""
    t = project_minute_counts
    query = select(t.c.project_id, func.sum(t.c.count)).where(t.c.minute >= since_minute).group_by(t.c.project_id)
    return {project_id: int(total) for project_id, total in conn.execute(query)}


def read_durations(conn: Connection, project_ids: Collection[int], since: float,
                   until: float) -> dict[int, list[float]]:
    """Durations (ms) of each project's transactions that ended in [since, until), at most MAX_DURATIONS
    of the newest, oldest first; with their end times in `read_timed_durations`."""
    return {p: [d for _, d in rows] for p, rows in read_timed_durations(conn, project_ids, since, until).items()}


def read_timed_durations(conn: Connection, project_ids: Collection[int], since: float,
                         until: float) -> dict[int, list[tuple[float, float]]]:
    t = transactions
    found: dict[int, list[tuple[float, float]]] = {}
    for project_id in sorted(set(project_ids)):
        query = (select(t.c.timestamp, t.c.duration_ms)
                 .where(t.c.project_id == project_id, t.c.timestamp >= since, t.c.timestamp < until)
                 .order_by(t.c.timestamp.desc()).limit(MAX_DURATIONS))
        found[project_id] = [(float(at), float(ms)) for at, ms in conn.execute(query)][::-1]
    return found


def count_value(spec: ThresholdSpec, series: Series, project_series: Mapping[str, Series],
                first_minute: int, last_minute: int) -> float | None:
    """A count rule's value over [first_minute, last_minute]: `count`, `rate` per minute, or `ratio` in
    percent of the denominator (read from `project_series`, the project's series by metric). None when
    a ratio's denominator is zero or below `min_volume`.

    >>> from watchkeeper.alerting.rules import ThresholdSpec
    >>> spec = ThresholdSpec(metric="errors", aggregation="ratio", denominator="transactions", threshold=5)
    >>> count_value(spec, Series(1, "", "", {10: 3}), {"transactions": Series(1, "", "", {10: 60})}, 10, 10)
    5.0
    """
    total = series.total(first_minute, last_minute)
    if spec.aggregation == "rate":
        return total / spec.window_minutes
    if spec.aggregation == "ratio":
        names = ["errors", "transactions"] if spec.denominator == "requests" else [str(spec.denominator)]
        below = sum(project_series[m].total(first_minute, last_minute) for m in names if m in project_series)
        if below == 0 or below < spec.min_volume:
            return None
        return 100.0 * total / below
    return float(total)


def duration_value(spec: ThresholdSpec, durations: Sequence[float]) -> float | None:
    """`average` or `percentile` (nearest rank) of durations in ms; None with fewer than `min_volume`
    (or no) transactions.

    >>> from watchkeeper.alerting.rules import ThresholdSpec
    >>> spec = ThresholdSpec(metric="transaction_duration", aggregation="percentile", percentile=90, threshold=1)
    >>> duration_value(spec, [float(ms) for ms in range(1, 101)])
    90.0
    """
    if not durations or len(durations) < spec.min_volume:
        return None
    if spec.aggregation == "average":
        return math.fsum(durations) / len(durations)
    ordered = sorted(durations)
    rank = math.ceil((spec.percentile or 100) / 100 * len(ordered))
    return ordered[max(0, rank - 1)]
