"""Alerts as stored: identity (the fingerprint of the label set), state, times; shared by rule alerts and
alerts received over the Alertmanager API."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, case, delete, func, insert, select, update

from watchkeeper.alerting.tables import alerts


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id for a label set (the alert's identity), 16 hex digits like Alertmanager's.

    >>> fingerprint({"alertname": "Down", "monitor": "api"}) == fingerprint({"monitor": "api", "alertname": "Down"})
    True
    """
    canonical = orjson.dumps(sorted(labels.items()))
    return hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(slots=True)  # tens of thousands live in memory during an alert storm (the dispatcher's index)
class Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # "pending" or "firing"; see `status`
    active_at: float
    starts_at: float | None = None
    ends_at: float | None = None
    rule_id: int | None = None
    project_id: int | None = None
    last_true_at: float | None = None
    value: float | None = None
    generator_url: str | None = None
    updated_at: float = 0.0
    changed: bool = field(default=False, compare=False)

    def resolved(self, now: float) -> bool:
        return self.ends_at is not None and self.ends_at <= now

    def status(self, now: float) -> str:
        """inactive is never stored: pending, firing or resolved."""
        if self.state == "pending":
            return "pending"
        return "resolved" if self.resolved(now) else "firing"

    def row(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint, "rule_id": self.rule_id, "project_id": self.project_id,
            "labels": orjson.dumps(self.labels).decode(), "annotations": orjson.dumps(self.annotations).decode(),
            "state": self.state, "active_at": self.active_at, "starts_at": self.starts_at, "ends_at": self.ends_at,
            "last_true_at": self.last_true_at, "value": self.value, "generator_url": self.generator_url,
            "updated_at": self.updated_at,
        }


@functools.lru_cache(maxsize=4096)
def parsed_map(text: str) -> dict[str, str]:
    """Labels and annotations as dicts. The same alerts are read again and again (a group's members at
    each flush, the alerts of threshold rules each round), and parsing their JSON again each time was
    most of the cost; the same text gives the same (shared) dict, which is why nothing may change an
    alert's labels or annotations in place: they are replaced. Bounded (4096 texts, about 3 MiB): under
    an alert storm it cannot hold them all anyway."""
    value: dict[str, str] = orjson.loads(text)
    return value


def alert_from_row(row: Any) -> Alert:
    return Alert(row.fingerprint, parsed_map(row.labels), parsed_map(row.annotations), row.state, row.active_at,
                 row.starts_at, row.ends_at, row.rule_id, row.project_id, row.last_true_at, row.value,
                 row.generator_url, row.updated_at)


def load_alerts(conn: Connection, *, rules_only: bool = False, external_only: bool = False,
                firing_only: bool = False, project_id: int | None = None,
                rule_ids: Collection[int] | None = None) -> list[Alert]:
    query = select(alerts)
    if project_id is not None:
        query = query.where(alerts.c.project_id == project_id)
    if rule_ids is not None:
        query = query.where(alerts.c.rule_id.in_(sorted(rule_ids)))
    if rules_only:
        query = query.where(alerts.c.rule_id.is_not(None))
    if external_only:
        query = query.where(alerts.c.rule_id.is_(None))
    if firing_only:
        query = query.where(alerts.c.state == "firing")
    return [alert_from_row(row) for row in conn.execute(query)]


def select_alerts(conn: Connection, *where: Any) -> list[Alert]:
    """The alerts matching every condition given (columns of `tables.alerts`)."""
    return [alert_from_row(row) for row in conn.execute(select(alerts).where(*where))]


def status_counts(conn: Connection, now: float, *, rules_only: bool = False) -> dict[str, int]:
    """How many stored alerts are pending, firing and resolved now (`Alert.status`), counted by the database."""
    status = case((alerts.c.state == "pending", "pending"),
                  (and_(alerts.c.ends_at.is_not(None), alerts.c.ends_at <= now), "resolved"), else_="firing")
    query = select(status, func.count()).group_by(status)
    if rules_only:
        query = query.where(alerts.c.rule_id.is_not(None))
    return {str(s): int(n) for s, n in conn.execute(query)}


def load_by_fingerprint(conn: Connection, fingerprints: Collection[str]) -> list[Alert]:
    return list(iter_by_fingerprint(conn, fingerprints))


def iter_by_fingerprint(conn: Connection, fingerprints: Collection[str]) -> Iterator[Alert]:
    """These alerts (those that exist), read 500 at a time: a caller that uses each in turn never holds
    them all at once."""
    keys = sorted(fingerprints)
    for start in range(0, len(keys), 500):
        query = select(alerts).where(alerts.c.fingerprint.in_(keys[start:start + 500]))
        yield from [alert_from_row(row) for row in conn.execute(query)]


def versions(conn: Connection, fingerprints: Collection[str]) -> dict[str, float]:
    """The stored `updated_at` of each of these alerts that exists (to check a plan read them as they are)."""
    keys = sorted(set(fingerprints))
    found: dict[str, float] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        query = select(alerts.c.fingerprint, alerts.c.updated_at).where(alerts.c.fingerprint.in_(chunk))
        found.update({fp: float(at) for fp, at in conn.execute(query)})
    return found


def version_counts(conn: Connection, since: float) -> dict[float, int]:
    """How many alerts (any state) carry each `updated_at` at or after `since`, counted on the updated_at
    index: one row per round (or API post) that wrote alerts, not one per alert. A dispatch round compares
    these with the counts it knows and reads only the alerts of the versions that differ."""
    query = (select(alerts.c.updated_at, func.count()).where(alerts.c.updated_at >= since)
             .group_by(alerts.c.updated_at))
    return {float(at): int(n) for at, n in conn.execute(query)}


IndexRow = tuple[str, str, str, float | None, float]


def index_rows_by_version(conn: Connection, updated_at: Collection[float]) -> Iterator[IndexRow]:
    """(fingerprint, labels as stored, state, starts_at, updated_at) of the alerts whose `updated_at` is one
    of these, 500 versions at a time: what the dispatcher's index needs, without building alerts."""
    keys = sorted(updated_at)
    t = alerts
    for start in range(0, len(keys), 500):
        query = select(t.c.fingerprint, t.c.labels, t.c.state, t.c.starts_at, t.c.updated_at).where(
            t.c.updated_at.in_(keys[start:start + 500]))
        yield from [(fp, labels, state, starts, float(at)) for fp, labels, state, starts, at in conn.execute(query)]


def stream_alerts(conn: Connection, *where: Any, page: int = 1000) -> Iterator[Alert]:
    """The alerts matching every condition, read a page at a time (by fingerprint), for a caller that keeps
    only some of them or puts each in an index of its own: never the whole result set in memory."""
    after = ""
    while True:
        rows = conn.execute(select(alerts).where(*where, alerts.c.fingerprint > after)
                            .order_by(alerts.c.fingerprint).limit(page)).all()
        yield from (alert_from_row(row) for row in rows)
        if len(rows) < page:
            return
        after = rows[-1].fingerprint


def save_alerts(conn: Connection, new: Sequence[Alert], changed: Sequence[Alert]) -> None:
    """Insert new alerts and update changed ones (by fingerprint), each as one executemany."""
    if new:
        conn.execute(insert(alerts), [a.row() for a in new])
    if changed:
        rows = [{**a.row(), "b_fingerprint": a.fingerprint} for a in changed]
        for row in rows:
            del row["fingerprint"]
        statement = update(alerts).where(alerts.c.fingerprint == bindparam("b_fingerprint"))
        conn.execute(statement, rows)


def delete_alerts(conn: Connection, fingerprints: Iterable[str]) -> None:
    keys = list(fingerprints)
    for start in range(0, len(keys), 500):
        conn.execute(delete(alerts).where(alerts.c.fingerprint.in_(keys[start:start + 500])))


def forget_resolved(conn: Connection, *, before: float) -> int:
    """Delete alerts resolved before `before` (their resolved notification has had its chance)."""
    return conn.execute(delete(alerts).where(alerts.c.ends_at.is_not(None), alerts.c.ends_at <= before)).rowcount
