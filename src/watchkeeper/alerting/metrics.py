"""Per-minute counts that threshold rules watch, read from each domain's minute-count tables.

One query per metric and evaluation round covers every rule on that metric: rows are grouped by
subject (project or issue) and minute, and each rule sums the minutes of its own window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from watchkeeper.errors.tables import issue_minute_counts, issues, project_minute_counts


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
