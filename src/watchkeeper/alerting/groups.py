"""Aggregation groups, and what one flush of a group holds: every member counted, the first
MAX_LISTED_ALERTS of its firing and of its resolved alerts (in Alertmanager's order) held whole.

An alert storm's group (every new-issue alert of a project, on the default route) has tens of thousands
of members; a flush reads them a lot at a time into `Gathered`, which keeps fingerprints for the
notification log and the labels and annotations they all share, and bounded heaps of the alerts a
notification lists. The dispatcher (dispatch.py) decides which groups flush and what is sent.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from watchkeeper.alerting.alerts import Alert
from watchkeeper.alerting.routing import Route, label_set


@dataclass
class AggregationGroup:
    key: str
    route: Route
    labels: dict[str, str]
    next_flush: float
    flushed_once: bool = False
    members: set[str] = field(default_factory=set)
    # Resolved alerts already notified (fingerprint → ends_at): later flushes leave them out, as
    # Alertmanager removes them from the group after a successful flush.
    flushed_resolved: dict[str, float] = field(default_factory=dict)


@dataclass
class FlushPlan:
    group: AggregationGroup
    # The alerts a notification lists, in order: all of them, or the first MAX_LISTED_ALERTS of each
    # when more (an alert storm's group); `counted` then says what was left out.
    firing: list[Alert]
    resolved: list[Alert]
    # The route's mute/active time intervals hold notifications back now: the group's timer moves on
    # (as in Alertmanager) but nothing is sent and the notification log is left as it was, so the
    # first flush after the interval sends what changed.
    time_muted: bool = False
    counted: Counted | None = None

    @property
    def firing_fingerprints(self) -> set[str]:
        return self.counted.firing if self.counted else {a.fingerprint for a in self.firing}

    @property
    def resolved_ends(self) -> dict[str, float]:
        return self.counted.resolved if self.counted else {a.fingerprint: a.ends_at or 0.0 for a in self.resolved}


# A notification lists at most this many alerts (the first, in order); the others are counted in its
# truncatedAlerts, as Alertmanager's max_alerts does. A flush of an alert storm's group (tens of thousands
# of members) then holds and stores this many, not all of them, and so does its delivery.
MAX_LISTED_ALERTS = 5000


class _Last:
    """An order key compared the other way round: a heap of these keeps the smallest keys (see `Gathered`)."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[float, str]) -> None:
        self.key = key

    def __lt__(self, other: _Last) -> bool:
        return self.key > other.key


@dataclass
class Counted:
    """Every alert of a flush, when it has more than it lists: fingerprints (the notification log), and
    the labels and annotations all of them share, firing and resolved apart (a notification's common
    labels are those of every alert it is about, listed or not)."""

    limit: int  # how many of each the notification lists
    firing: set[str] = field(default_factory=set)
    resolved: dict[str, float] = field(default_factory=dict)  # fingerprint → ends_at
    common: dict[str, tuple[set[tuple[str, str]], set[tuple[str, str]]] | None] = field(
        default_factory=lambda: {"firing": None, "resolved": None})

    def common_of(self, kinds: tuple[str, ...], first: Alert) -> tuple[dict[str, str], dict[str, str]]:
        """The labels and annotations common to every alert of these kinds, in the order of `first` (the
        first listed), as `_common` gives them."""
        labels: set[tuple[str, str]] | None = None
        annotations: set[tuple[str, str]] | None = None
        for kind in kinds:
            found = self.common[kind]
            if found is None:
                continue
            labels = found[0] if labels is None else labels & found[0]
            annotations = found[1] if annotations is None else annotations & found[1]
        return ({k: v for k, v in first.labels.items() if (k, v) in (labels or set())},
                {k: v for k, v in first.annotations.items() if (k, v) in (annotations or set())})


class Gathered:
    """The members of one due group, met one at a time: all are counted, and only the first
    `limit` firing and resolved ones (by `order_key`) are kept whole, in bounded heaps."""

    def __init__(self, group: AggregationGroup, limit: int) -> None:
        self.group, self.limit, self.counted = group, limit, Counted(limit)
        self.heaps: dict[str, list[tuple[_Last, str, Alert]]] = {"firing": [], "resolved": []}
        self.unmuted = False  # an alert of the group was not muted (even if notified resolved already)

    def add(self, alert: Alert, now: float) -> None:
        self.unmuted = True
        if alert.resolved(now):
            if self.group.flushed_resolved.get(alert.fingerprint) == alert.ends_at:
                return  # notified already: left out, as Alertmanager removes it after the flush
            kind = "resolved"
            self.counted.resolved[alert.fingerprint] = alert.ends_at or 0.0
        else:
            kind = "firing"
            self.counted.firing.add(alert.fingerprint)
        common = self.counted.common[kind]
        labels, annotations = alert.labels.items(), alert.annotations.items()
        if common is None:
            self.counted.common[kind] = (set(labels), set(annotations))
        else:
            common[0].intersection_update(labels)
            common[1].intersection_update(annotations)
        heap = self.heaps[kind]
        heapq.heappush(heap, (_Last(order_key(alert)), alert.fingerprint, alert))
        if len(heap) > self.limit:
            heapq.heappop(heap)  # the last in order of those kept

    def plan(self) -> FlushPlan:
        listed = {kind: [alert for _, _, alert in sorted(heap, key=lambda item: item[0].key)]
                  for kind, heap in self.heaps.items()}
        whole = len(self.counted.firing) <= self.limit and len(self.counted.resolved) <= self.limit
        return FlushPlan(self.group, listed["firing"], listed["resolved"], counted=None if whole else self.counted)


def order_key(alert: Alert) -> tuple[float, str]:
    return (alert.starts_at or alert.active_at, label_set(alert.labels))
