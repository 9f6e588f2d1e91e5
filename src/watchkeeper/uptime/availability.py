"""The one definition of uptime (docs/uptime.md), used by every page, API, badge and report.

Counted time of a monitor: from its first check result (or ping) until now, less the time it was paused
and its maintenance. Downtime: its confirmed outages (each from the first failed check of the run that
confirmed it) within counted time. Uptime % = 100 * (counted - down) / counted, and None ("no data")
when nothing was counted: time nobody watched is never reported as 100 %. SLA compliance is the same
percentage over a calendar month.

A status-page component is counted while any of its monitors is, and is down while any of them is down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Table, select

from watchkeeper.uptime.maintenance import list_windows, merged_periods
from watchkeeper.uptime.tables import monitor_pauses, monitors, outages

Span = tuple[float, float]


def without(spans: Iterable[Span], holes: list[Span]) -> list[Span]:
    """`spans` less the merged, ordered `holes`.

    >>> without([(0, 10)], [(2, 3), (5, 6)])
    [(0, 2), (3, 5), (6, 10)]
    """
    pieces: list[Span] = []
    for begin, end in spans:
        for hole_begin, hole_end in holes:
            if hole_end <= begin or hole_begin >= end:
                continue
            if hole_begin > begin:
                pieces.append((begin, hole_begin))
            begin = max(begin, hole_end)
        if begin < end:
            pieces.append((begin, end))
    return pieces


def within(spans: Iterable[Span], start: float, end: float) -> list[Span]:
    """The parts of `spans` inside [start, end)."""
    return [(max(b, start), min(e, end)) for b, e in spans if b < end and e > start]


def intersection(first: list[Span], second: list[Span]) -> list[Span]:
    """Where two merged, ordered span lists overlap."""
    found: list[Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        begin, end = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if begin < end:
            found.append((begin, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return found


@dataclass(frozen=True, slots=True)
class Availability:
    """Counted time and downtime (merged spans, epoch seconds) of a monitor or component."""

    counted: tuple[Span, ...] = ()
    down: tuple[Span, ...] = ()

    def between(self, start: float, end: float) -> Availability:
        return Availability(tuple(within(self.counted, start, end)), tuple(within(self.down, start, end)))

    @property
    def counted_seconds(self) -> float:
        return sum(e - b for b, e in self.counted)

    @property
    def down_seconds(self) -> float:
        return sum(e - b for b, e in self.down)

    @property
    def percent(self) -> float | None:
        """Uptime %, or None when no time was counted ("no data").

        >>> Availability(((0, 100),), ((0, 1),)).percent
        99.0
        """
        counted = self.counted_seconds
        if counted <= 0:
            return None
        return round(100.0 * (counted - self.down_seconds) / counted, 4)


def combined(parts: Iterable[Availability]) -> Availability:
    """A component of several monitors: counted while any is, down while any is."""
    items = list(parts)
    return Availability(tuple(merged_periods(s for a in items for s in a.counted)),
                        tuple(merged_periods(s for a in items for s in a.down)))


def _spans_by_monitor(conn: Connection, table: Table, ids: list[int], start: float,
                      end: float) -> dict[int, list[Span]]:
    """Pauses or outages that overlap [start, end), per monitor (an open one lasts until `end`)."""
    found: dict[int, list[Span]] = {}
    rows = conn.execute(select(table.c.monitor_id, table.c.started_at, table.c.ended_at).where(
        table.c.monitor_id.in_(ids), table.c.started_at < end, table.c.ended_at.is_(None) | (table.c.ended_at > start)))
    for monitor_id, begin, finish in rows:
        found.setdefault(monitor_id, []).append((begin, finish if finish is not None else end))
    return found


def monitors_availability(conn: Connection, monitor_ids: Iterable[int], start: float, end: float,
                          now: float) -> dict[int, Availability]:
    """Each monitor's counted time and downtime within [start, min(end, now)), in a few queries.

    >>> # monitors_availability(conn, [7], now - 86400, now, now)[7].percent → 99.93
    """
    ids = sorted(set(monitor_ids))
    found = {i: Availability() for i in ids}
    end = min(end, now)
    if not ids or end <= start:
        return found
    rows = conn.execute(select(monitors.c.id, monitors.c.project_id, monitors.c.first_result_at)
                        .where(monitors.c.id.in_(ids))).all()
    paused = _spans_by_monitor(conn, monitor_pauses, ids, start, end)
    down = _spans_by_monitor(conn, outages, ids, start, end)
    windows = list_windows(conn, {r.project_id for r in rows})
    periods = {w.id: within(w.periods_between(start, end), start, end) for w in windows}
    for row in rows:
        if row.first_result_at is None or row.first_result_at >= end:
            continue  # never checked in this range: no data
        holes = merged_periods([*paused.get(row.id, []),
                                *(p for w in windows if w.project_id == row.project_id and w.covers(row.id)
                                                 for p in periods[w.id])])
        counted = without([(max(start, row.first_result_at), end)], holes)
        outage = merged_periods(within(down.get(row.id, []), start, end))
        found[row.id] = Availability(tuple(counted), tuple(intersection(outage, counted)))
    return found
