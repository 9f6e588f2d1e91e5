"""Quotas per Sentry data category (per minute and per hour), via the `limits` package.

Every envelope item is counted in the category Sentry's SDKs and Relay use for it: events as
``error``, transactions, spans, attachments (in bytes), sessions, profiles, replays, check-ins
(``monitor``), logs (``log_item``)... A 429 or an `X-Sentry-Rate-Limits` header names exactly the
categories refused, so SDKs never stop sending what we still accept.

Error events are limited by the key's and the project's ``events_per_minute``/``events_per_hour``
(with the server's defaults); every other category by the project's ``quotas`` setting, else the
server's ``ingest.default_quotas``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from watchkeeper.auth.key_cache import KeyGrant

# Sentry's data category for each envelope item type (what SDKs read in X-Sentry-Rate-Limits).
# Security reports count as errors, as they do in Sentry. Client reports are never limited.
ITEM_CATEGORIES: dict[str, str] = {
    "event": "error",
    "security": "error",
    "raw_security": "error",
    "nel": "error",
    "transaction": "transaction",
    "span": "span",
    "otel_span": "span",
    "attachment": "attachment",
    "session": "session",
    "sessions": "session",
    "profile": "profile",
    "profile_chunk": "profile_chunk",
    "replay_event": "replay",
    "replay_recording": "replay",
    "replay_video": "replay",
    "check_in": "monitor",
    "log": "log_item",
    "otel_log": "log_item",
    "user_report": "feedback",
    "feedback": "feedback",
    "statsd": "metric_bucket",
    "metric_buckets": "metric_bucket",
}
# The categories a project's `quotas` setting may name (errors have their own columns).
QUOTA_CATEGORIES = frozenset(ITEM_CATEGORIES.values()) - {"error"}
# The categories a refused error quota names: the SDKs' names for every kind of error event.
_HEADER_CATEGORIES = {"error": "error;default;security"}


def item_category(item_type: str) -> str | None:
    """The quota category of an envelope item type; None for items no quota applies to.

    >>> item_category("check_in"), item_category("client_report")
    ('monitor', None)
    """
    return ITEM_CATEGORIES.get(item_type)


def item_quantity(category: str, size: int) -> int:
    """How much of its category's quota an item of ``size`` bytes uses: attachments count bytes.

    >>> item_quantity("attachment", 2048), item_quantity("transaction", 2048)
    (2048, 1)
    """
    return size if category == "attachment" else 1


@dataclass(frozen=True, slots=True)
class Refusal:
    retry_after: int
    scope: str  # "project" or "key"
    reason: str
    category: str = "error"

    def header(self) -> str:
        """The `X-Sentry-Rate-Limits` entry for this refusal.

        >>> Refusal(42, "project", "project_quota").header()
        '42:error;default;security:project:project_quota'
        >>> Refusal(60, "project", "project_quota", "attachment").header()
        '60:attachment:project:project_quota'
        """
        categories = _HEADER_CATEGORIES.get(self.category, self.category)
        return f"{self.retry_after}:{categories}:{self.scope}:{self.reason}"


def rate_limits_header(refusals: Mapping[str, Refusal]) -> str:
    """The `X-Sentry-Rate-Limits` value naming every refused category.

    >>> rate_limits_header({"transaction": Refusal(5, "project", "project_quota", "transaction")})
    '5:transaction:project:project_quota'
    """
    return ", ".join(refusal.header() for refusal in refusals.values())


@dataclass(frozen=True, slots=True)
class _Window:
    scope: str
    reason: str
    item: RateLimitItem
    ident: str


def quota_windows(settings: Any) -> dict[str, dict[str, int]]:
    """A project's valid `quotas` setting, or a ValueError naming what is wrong.

    >>> quota_windows({"attachment": {"per_hour": 1048576}})
    {'attachment': {'per_hour': 1048576}}
    """
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ValueError("quotas: must be an object of category: {per_minute, per_hour}")
    valid: dict[str, dict[str, int]] = {}
    for category, windows in settings.items():
        if category not in QUOTA_CATEGORIES:
            known = ", ".join(sorted(QUOTA_CATEGORIES))
            raise ValueError(f"quotas: unknown category {str(category)[:40]!r} (known: {known})")
        if not isinstance(windows, Mapping):
            raise ValueError(f"quotas.{category}: must be an object with per_minute and/or per_hour")
        entry: dict[str, int] = {}
        for window, amount in windows.items():
            if window not in ("per_minute", "per_hour"):
                raise ValueError(f"quotas.{category}: unknown window {str(window)[:40]!r} (per_minute, per_hour)")
            if amount is None:
                continue
            if type(amount) is not int or not 1 <= amount <= 2**62:
                raise ValueError(f"quotas.{category}.{window}: must be a whole number of at least 1, or null")
            entry[window] = amount
        if entry:
            valid[category] = entry
    return valid


class Quotas:
    """Consumes and checks every quota that applies to a key's items, category by category."""

    def __init__(
        self,
        default_per_minute: int | None = None,
        default_per_hour: int | None = None,
        default_quotas: Mapping[str, Mapping[str, int | None]] | None = None,
    ) -> None:
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._default_minute = default_per_minute
        self._default_hour = default_per_hour
        self._defaults = {category: dict(windows) for category, windows in (default_quotas or {}).items()}

    def take(self, grant: KeyGrant, category: str, quantity: int) -> Refusal | None:
        """Consume ``quantity`` from every quota of ``category`` that applies, or say which one refuses."""
        return self.take_all(grant, {category: quantity})

    def take_all(self, grant: KeyGrant, usage: Mapping[str, int]) -> Refusal | None:
        """Consume all of ``usage`` (category: quantity), or nothing and the first refusal."""
        windows = [
            (category, quantity, window)
            for category, quantity in usage.items()
            for window in self._windows(grant, category)
        ]
        for category, quantity, window in windows:
            if quantity and not self._limiter.test(window.item, window.ident, cost=quantity):
                return self._refusal(category, window)
        for _category, quantity, window in windows:
            if quantity:
                self._limiter.hit(window.item, window.ident, cost=quantity)
        return None

    def budget(self, grant: KeyGrant) -> dict[str, int]:
        """What each limited category can still take now (nothing consumed): for a processor process,
        which cannot reach these counters, to refuse items before it reads them."""
        remaining: dict[str, int] = {}
        for category in ("error", *self._project_categories(grant)):
            for window in self._windows(grant, category):
                left = self._limiter.get_window_stats(window.item, window.ident).remaining
                remaining[category] = min(left, remaining.get(category, left))
        return remaining

    def refusal(self, grant: KeyGrant, category: str) -> Refusal:
        """Why ``category`` refuses more now: its most exhausted window."""
        windows = self._windows(grant, category)
        if not windows:
            return Refusal(1, "project", "project_quota", category)
        tightest = min(windows, key=lambda w: self._limiter.get_window_stats(w.item, w.ident).remaining)
        return self._refusal(category, tightest)

    def _refusal(self, category: str, window: _Window) -> Refusal:
        stats = self._limiter.get_window_stats(window.item, window.ident)
        # `limits` keeps windows on the wall clock, so the reset is measured on it too.
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return Refusal(retry, window.scope, window.reason, category)

    def _project_categories(self, grant: KeyGrant) -> set[str]:
        return set(self._defaults) | set(self._project_quotas(grant))

    @staticmethod
    def _project_quotas(grant: KeyGrant) -> dict[str, dict[str, int]]:
        try:
            return quota_windows(grant.project_settings.get("quotas"))
        except ValueError:
            return {}  # checked when saved; a hand-edited row must not stop ingest

    def _windows(self, grant: KeyGrant, category: str) -> list[_Window]:
        if category == "error":
            checks = [
                ("key", "key_quota", grant.key_per_minute, grant.key_per_hour, f"k{grant.key_id}"),
                (
                    "project",
                    "project_quota",
                    grant.project_per_minute or self._default_minute,
                    grant.project_per_hour or self._default_hour,
                    f"p{grant.project_id}",
                ),
            ]
        else:
            own = self._project_quotas(grant).get(category, {})
            default = self._defaults.get(category, {})
            checks = [
                (
                    "project",
                    "project_quota",
                    own.get("per_minute") or default.get("per_minute"),
                    own.get("per_hour") or default.get("per_hour"),
                    f"p{grant.project_id}:{category}",
                )
            ]
        windows: list[_Window] = []
        for scope, reason, per_minute, per_hour, ident in checks:
            if per_minute:
                windows.append(_Window(scope, reason, RateLimitItemPerMinute(per_minute), ident))
            if per_hour:
                windows.append(_Window(scope, reason, RateLimitItemPerHour(per_hour), ident))
        return windows
