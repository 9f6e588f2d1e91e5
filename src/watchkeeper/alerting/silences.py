"""Silences: matchers with a start and an end, who made them and why (Alertmanager's model).

A silence is pending before `starts_at`, active until `ends_at`, then expired; expiring one early sets
`ends_at` to now. Expired silences are kept (for the record) and listed like Alertmanager does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from watchkeeper.alerting.matchers import Matcher
from watchkeeper.alerting.tables import silences


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)


def _from_row(row: Any) -> Silence:
    return Silence(row.id, [Matcher.from_api(m) for m in orjson.loads(row.matchers)], row.starts_at, row.ends_at,
                   row.created_by, row.comment, row.updated_at)


def save_silence(conn: Connection, matchers: list[Matcher], *, starts_at: float, ends_at: float, created_by: str,
                 comment: str, now: float, silence_id: str | None = None) -> Silence:
    """Create a silence, or update one (by id).

    >>> # save_silence(conn, parse_matchers(['alertname="Down"']), starts_at=now, ends_at=now + 3600, ...)
    """
    if not matchers:
        raise ValueError("matchers: a silence needs at least one matcher")
    if ends_at <= starts_at:
        raise ValueError("endsAt: must be after startsAt")
    values = {"matchers": orjson.dumps([m.to_api() for m in matchers]).decode(), "starts_at": starts_at,
              "ends_at": ends_at, "created_by": created_by, "comment": comment, "updated_at": now}
    if silence_id is not None and get_silence(conn, silence_id) is not None:
        conn.execute(update(silences).where(silences.c.id == silence_id).values(values))
    else:
        silence_id = silence_id or str(uuid.uuid4())
        conn.execute(silences.insert().values(id=silence_id, **values))
    found = get_silence(conn, silence_id)
    assert found is not None
    return found


def get_silence(conn: Connection, silence_id: str) -> Silence | None:
    row = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
    return _from_row(row) if row else None


def list_silences(conn: Connection) -> list[Silence]:
    return [_from_row(r) for r in conn.execute(select(silences).order_by(silences.c.ends_at.desc()))]


def active_silences(conn: Connection, now: float) -> list[Silence]:
    query = select(silences).where(silences.c.starts_at <= now, silences.c.ends_at > now)
    return [_from_row(r) for r in conn.execute(query)]


def expire_silence(conn: Connection, silence_id: str, *, now: float) -> bool:
    """End a silence now; False when it does not exist or has already expired."""
    found = get_silence(conn, silence_id)
    if found is None or found.state(now) == "expired":
        return False
    # A pending silence starts and ends now, so it never was active (Alertmanager does the same).
    conn.execute(update(silences).where(silences.c.id == silence_id).values(
        ends_at=now, starts_at=min(found.starts_at, now), updated_at=now))
    return True
