"""Flap detection for threshold alerts, Nagios' way: the percent state change over the last 21
evaluations, newer changes weighted more (0.8 for the oldest to 1.2 for the newest). An alert starts
flapping when it reaches the high mark and stops when it falls to the low mark (hysteresis); while it
flaps it stays firing (it does not resolve and fire again each round), and its `flapping` annotation
says so, so receivers are not paged over and over.

The history lives in the evaluator's memory: after a restart it is rebuilt within 21 rounds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 21  # evaluations, i.e. 20 possible state changes


def percent_state_change(history: list[bool]) -> float:
    """Weighted percent of changes between consecutive results.

    >>> percent_state_change([True, False] * 10 + [True]), percent_state_change([True] * 21)
    (100.0, 0.0)
    """
    changes = len(history) - 1
    if changes < 1:
        return 0.0
    total = 0.0
    for index in range(changes):
        if history[index] != history[index + 1]:
            total += 0.8 + 0.4 * index / max(1, WINDOW - 2)
    return min(100.0, 100.0 * total / (WINDOW - 1))


@dataclass
class FlapTracker:
    """Per alert fingerprint: the recent condition results and whether it is flapping now."""

    start_percent: float = 20.0
    stop_percent: float = 5.0
    histories: dict[str, deque[bool]] = field(default_factory=dict)
    flapping: set[str] = field(default_factory=set)

    def record(self, fingerprint: str, condition: bool) -> bool:
        """Add one evaluation's result; returns whether the alert is flapping."""
        history = self.histories.setdefault(fingerprint, deque(maxlen=WINDOW))
        history.append(condition)
        change = percent_state_change(list(history))
        if fingerprint in self.flapping and change <= self.stop_percent:
            self.flapping.discard(fingerprint)
        elif fingerprint not in self.flapping and change >= self.start_percent:
            self.flapping.add(fingerprint)
        return fingerprint in self.flapping

    def forget(self, keep: set[str]) -> None:
        """Drop histories of alerts that no longer exist and are quiet."""
        for fingerprint in [f for f in self.histories if f not in keep and not any(self.histories[f])]:
            del self.histories[fingerprint]
            self.flapping.discard(fingerprint)
