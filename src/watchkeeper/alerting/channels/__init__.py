"""Notification channels. Each renders its message from the Alertmanager v4 payload of a group and sends
it; a failure raises DeliveryFailed saying whether a retry can help (timeouts, 429, 5xx) and when.

Endpoints come from the receiver's configuration (so tests point them at local receivers); all HTTP
goes through the one guarded outbound client.
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from watchkeeper.lib.clock import Clock
from watchkeeper.lib.outbound import TargetBlocked


class DeliveryFailed(Exception):
    """A notification did not go out; `retryable` says whether to try again, `retry_after` when at the
    earliest (from the receiver's Retry-After)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class ChannelContext:
    client: httpx.AsyncClient
    clock: Clock
    timeout: float
    # The guard for channels that are not HTTP (SMTP): the address to connect to, or TargetBlocked.
    resolve: Callable[[str, int], Awaitable[str]]


Sender = Callable[[Any, dict[str, Any], ChannelContext], Awaitable[None]]


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date).

    >>> retry_after_seconds("120", 0.0), retry_after_seconds(None, 0.0)
    (120.0, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def check_response(response: httpx.Response, now: float, *, retry_statuses: frozenset[int] = frozenset({429})) -> None:
    """2xx is delivered; 429 and 5xx are retried (honouring Retry-After); any other answer is final."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"HTTP {status}: {response.text[:200]}"
    retryable = status >= 500 or status in retry_statuses
    raise DeliveryFailed(detail, retryable=retryable,
                         retry_after=retry_after_seconds(response.headers.get("Retry-After"), now))


async def post(ctx: ChannelContext, url: str, *, content: bytes | None = None, json: Any = None,
               headers: dict[str, str] | None = None) -> httpx.Response:
    """POST through the guarded client; transport errors and timeouts are retryable failures."""
    try:
        return await ctx.client.post(url, content=content, json=json, headers=headers, timeout=ctx.timeout)
    except TargetBlocked as exc:  # the SSRF guard: a retry will not change the answer
        raise DeliveryFailed(str(exc), retryable=False) from None
    except httpx.TimeoutException:
        raise DeliveryFailed(f"timed out after {ctx.timeout:g} s", retryable=True) from None
    except (httpx.HTTPError, OSError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}", retryable=True) from None


def alert_count(payload: dict[str, Any]) -> int:
    """How many alerts a notification is about: those it lists and those left out (`truncatedAlerts`)."""
    return len(payload["alerts"]) + int(payload.get("truncatedAlerts") or 0)


def firing_count(payload: dict[str, Any]) -> int:
    """How many firing alerts a notification is about, listed or left out (`truncatedFiring`, set by the
    dispatcher when an alert storm's group has more than a notification lists)."""
    return sum(1 for a in payload["alerts"] if a["status"] == "firing") + int(payload.get("truncatedFiring") or 0)


def title(payload: dict[str, Any]) -> str:
    """`[FIRING:2] HighErrors shop` like Alertmanager's default title."""
    firing = firing_count(payload)
    status = payload["status"].upper() + (f":{firing}" if payload["status"] == "firing" else "")
    return f"[{status}] " + " ".join(payload["groupLabels"].values())


def alert_line(alert: dict[str, Any]) -> str:
    labels = alert["labels"]
    summary = alert["annotations"].get("summary") or labels.get("alertname", "")
    severity = labels.get("priority") or labels.get("severity")
    return f"{'[' + severity + '] ' if severity else ''}{summary}"


def cut(text: str, limit: int) -> str:
    """>>> cut("abcdef", 4)
    'abc…'
    """
    return text if len(text) <= limit else text[: limit - 1] + "…"
