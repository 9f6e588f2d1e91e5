"""Incident response metrics per severity and calendar month (UTC); definitions in docs/alerting.md.

- MTTD: mean of (incident created - impact started); impact starts at the first alert's start (its
  `startsAt`, the time of the signal), or the time a person gave when declaring.
- MTTA: mean of (acknowledged - created), over incidents acknowledged.
- MTTR: mean of (resolved - created), over incidents resolved.
- Alert volume: alerts that fired (each firing of an alert counts once), by the alert's severity.
- Acknowledged share: of those alerts, the share that joined an incident someone acknowledged.

An incident counts in the month it was created; an alert in the month it started.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from watchkeeper.alerting.incident_tables import alert_occurrences, incidents


def month_start(epoch: float, back: int = 0) -> float:
    """The start of the UTC month of `epoch`, `back` months earlier.

    >>> month_start(1767225600.0 + 40 * 86400, back=1)  # 2026-02-10 → 2026-01-01
    1767225600.0
    """
    moment = datetime.fromtimestamp(epoch, UTC)
    index = moment.year * 12 + moment.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()


def _month(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def incident_metrics(conn: Connection, now: float, months: int, project_ids: frozenset[int] | None,
                     *, unowned: bool = True) -> list[dict[str, Any]]:
    """One row per (month, severity) with anything in it, newest month first; with `project_ids`, of those
    projects and (`unowned`) of none."""
    since = month_start(now, back=months - 1)
    i, o = incidents, alert_occurrences
    query = select(i.c.severity, i.c.project_id, i.c.impact_started_at, i.c.created_at, i.c.acknowledged_at,
                   i.c.resolved_at).where(i.c.created_at >= since)
    alerts = (select(o.c.severity, o.c.project_id, o.c.starts_at, i.c.acknowledged_at)
              .outerjoin(i, i.c.id == o.c.incident_id).where(o.c.starts_at >= since))
    if project_ids is not None:
        mine, theirs = i.c.project_id.in_(sorted(project_ids)), o.c.project_id.in_(sorted(project_ids))
        query = query.where(mine | i.c.project_id.is_(None) if unowned else mine)
        alerts = alerts.where(theirs | o.c.project_id.is_(None) if unowned else theirs)
    cells: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"detect": [], "ack": [], "resolve": [], "incidents": 0, "alerts": 0, "acknowledged_alerts": 0})
    for row in conn.execute(query):
        cell = cells[(_month(row.created_at), row.severity)]
        cell["incidents"] += 1
        cell["detect"].append(row.created_at - row.impact_started_at)
        if row.acknowledged_at is not None:
            cell["ack"].append(row.acknowledged_at - row.created_at)
        if row.resolved_at is not None:
            cell["resolve"].append(row.resolved_at - row.created_at)
    for occurrence in conn.execute(alerts):
        cell = cells[(_month(occurrence.starts_at), occurrence.severity)]
        cell["alerts"] += 1
        cell["acknowledged_alerts"] += occurrence.acknowledged_at is not None
    result = []
    for (month, severity), cell in sorted(cells.items(), key=lambda item: (item[0][0], item[0][1]), reverse=True):
        result.append({
            "month": month, "severity": severity, "incidents": cell["incidents"],
            "mttd_seconds": _mean(cell["detect"]), "mtta_seconds": _mean(cell["ack"]),
            "mttr_seconds": _mean(cell["resolve"]), "alerts": cell["alerts"],
            "acknowledged_share": round(cell["acknowledged_alerts"] / cell["alerts"], 4) if cell["alerts"] else None,
        })
    return result
