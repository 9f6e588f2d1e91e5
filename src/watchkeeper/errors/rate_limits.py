"""Per-project and per-key event quotas (per minute and per hour), via the `limits` package.

Only error events are counted and limited; a 429 and `X-Sentry-Rate-Limits` name exactly the
categories we refuse, so SDKs never stop sending what we still accept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from watchkeeper.auth.key_cache import KeyGrant

# The categories our error quota applies to, as Sentry SDKs name them.
ERROR_CATEGORIES = "error;default;security"


@dataclass(frozen=True, slots=True)
class Refusal:
    retry_after: int
    scope: str  # "project" or "key"
    reason: str

    def header(self) -> str:
        """The `X-Sentry-Rate-Limits` value for this refusal.

        >>> Refusal(42, "project", "project_quota").header()
        '42:error;default;security:project:project_quota'
        """
        return f"{self.retry_after}:{ERROR_CATEGORIES}:{self.scope}:{self.reason}"


class EventQuotas:
    def __init__(self, default_per_minute: int | None = None, default_per_hour: int | None = None) -> None:
        self._limiter = FixedWindowRateLimiter(MemoryStorage())
        self._default_minute = default_per_minute
        self._default_hour = default_per_hour

    def exhausted(self, grant: KeyGrant) -> bool:
        """Whether a quota of the key or its project refuses even one more event now (nothing consumed)."""
        return any(not self._limiter.test(item, ident) for _s, _r, item, ident in self._items(grant))

    def take(self, grant: KeyGrant, count: int) -> Refusal | None:
        """Consume `count` events from every quota that applies, or say which one refuses them."""
        items = self._items(grant)
        for scope, reason, item, ident in items:
            if not self._limiter.test(item, ident, cost=count):
                stats = self._limiter.get_window_stats(item, ident)
                # `limits` keeps windows on the wall clock, so the reset is measured on it too.
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                return Refusal(retry, scope, reason)
        for _scope, _reason, item, ident in items:
            self._limiter.hit(item, ident, cost=count)
        return None

    def _items(self, grant: KeyGrant) -> list[tuple[str, str, RateLimitItem, str]]:
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
        items: list[tuple[str, str, RateLimitItem, str]] = []
        for scope, reason, per_minute, per_hour, ident in checks:
            if per_minute:
                items.append((scope, reason, RateLimitItemPerMinute(per_minute), ident))
            if per_hour:
                items.append((scope, reason, RateLimitItemPerHour(per_hour), ident))
        return items
