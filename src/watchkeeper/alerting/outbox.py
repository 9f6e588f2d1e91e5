"""Delivery of the notification outbox: claim due rows, send them, record the outcome.

A row is claimed with a conditional update that pushes its `next_attempt_at` past the send's
deadline (a lease): if the process dies mid-send, the row comes due again and is sent then. Failures
that a retry can fix (timeouts, connection errors, 429, 5xx) are retried with exponential backoff and
jitter, never sooner than the receiver's Retry-After; others, or too many attempts, mark the row failed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, select, update

from watchkeeper.alerting.channels import (
    ChannelContext,
    DeliveryFailed,
    Sender,
    discord,
    mail,
    opsgenie,
    pagerduty,
    slack,
    teams,
    twilio,
    webhook,
)
from watchkeeper.alerting.channels import log as log_channel
from watchkeeper.alerting.routing import AlertingConfig, LogConfig
from watchkeeper.alerting.tables import notification_outbox
from watchkeeper.config import AlertingSettings
from watchkeeper.lib.clock import Clock
from watchkeeper.lib.outbound import Outbound

log = logging.getLogger(__name__)
SENDERS: dict[str, Sender] = {
    "webhook": webhook.send, "slack": slack.send, "email": mail.send, "pagerduty": pagerduty.send,
    "opsgenie": opsgenie.send, "discord": discord.send, "teams": teams.send, "twilio": twilio.send,
    "log": log_channel.send,
}
CLAIM_BATCH = 50
# Longest Retry-After we honour; a receiver asking for more is retried at this.
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Claimed:
    id: int
    receiver: str
    integration: str
    text: str  # the payload as stored (JSON)
    attempts: int

    @functools.cached_property
    def payload(self) -> dict[str, Any]:
        """The payload, parsed when the notification is sent (not while it is claimed, in the writer)."""
        parsed: dict[str, Any] = orjson.loads(self.text)
        return parsed


@dataclass(frozen=True)
class Outcome:
    id: int
    error: str | None
    retry_at: float | None  # None with an error: give up


def backoff(attempt: int, *, max_backoff: float, rng: random.Random) -> float:
    """Seconds before retry number `attempt` (1, 2, …): 1, 2, 4 … capped, times a jitter in [0.5, 1].

    >>> 0.5 <= backoff(1, max_backoff=300, rng=random.Random(1)) <= 1.0
    True
    """
    return min(max_backoff, 2.0 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


def claim_due(conn: Connection, now: float, lease: float, limit: int = CLAIM_BATCH) -> list[Claimed]:
    """Take up to `limit` due rows; each is leased by a conditional update, so two workers never
    take the same row. Only the oldest pending notification of a group and integration is taken, so a
    resolve never overtakes its trigger (even when the trigger waits for a retry)."""
    t = notification_outbox
    oldest = (select(func.min(t.c.id)).where(t.c.status == "pending")
              .group_by(t.c.receiver, t.c.integration, t.c.group_key))
    rows = conn.execute(select(t.c.id, t.c.receiver, t.c.integration, t.c.payload, t.c.attempts)
                        .where(t.c.status == "pending", t.c.next_attempt_at <= now, t.c.id.in_(oldest))
                        .order_by(t.c.next_attempt_at, t.c.id).limit(limit)).all()
    claimed = []
    for row in rows:
        taken = conn.execute(update(t).where(and_(t.c.id == row.id, t.c.status == "pending",
                                                  t.c.next_attempt_at <= now))
                             .values(next_attempt_at=now + lease)).rowcount
        if taken:
            claimed.append(Claimed(row.id, row.receiver, row.integration, row.payload, row.attempts))
    return claimed


def record_outcomes(conn: Connection, outcomes: list[Outcome], now: float) -> None:
    t = notification_outbox
    for outcome in outcomes:
        values: dict[str, Any] = {"attempts": t.c.attempts + 1, "last_error": outcome.error}
        if outcome.error is None:
            values |= {"status": "sent", "sent_at": now}
        elif outcome.retry_at is None:
            values |= {"status": "failed"}
        else:
            values |= {"next_attempt_at": outcome.retry_at}
        conn.execute(update(t).where(t.c.id == outcome.id).values(values))


WriteFunction = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


class DeliveryWorker:
    """Sends due notifications through their channels.

    >>> # await DeliveryWorker(write, clock, settings.alerting, config, outbound).deliver_due()
    """

    def __init__(self, write: WriteFunction, clock: Clock, settings: AlertingSettings, config: AlertingConfig,
                 outbound: Outbound, *, rng: random.Random | None = None,
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        self.write = write
        self.clock = clock
        self.settings = settings
        self.config = config
        self.context = ChannelContext(outbound.client(), clock, settings.delivery_timeout_seconds, outbound.resolve)
        self.rng = rng or random.Random()
        self.on_outcome = on_outcome  # (integration kind, "sent" | "retry" | "failed"), for /metrics

    async def deliver_due(self) -> int:
        """Send every notification due now (one claim batch at a time); returns how many were tried."""
        tried = 0
        while batch := await self._deliver_batch():
            tried += batch
        return tried

    async def _deliver_batch(self) -> int:
        now = self.clock.now()
        lease = self.settings.delivery_timeout_seconds * 3 + 30
        batch: list[Claimed] = await self.write(lambda conn: claim_due(conn, now, lease))
        if not batch:
            return 0
        await asyncio.gather(*(self._deliver(item) for item in batch))
        return len(batch)

    async def _deliver(self, item: Claimed) -> None:
        """Send one and record its outcome at once (the writer groups the commits of a batch): a kill
        then repeats only the notifications whose answer had not come back, not the whole batch."""
        outcome = await self._send(item)
        if self.on_outcome is not None:
            result = "sent" if outcome.error is None else "retry" if outcome.retry_at is not None else "failed"
            self.on_outcome(item.integration.partition("/")[0], result)
        done = self.clock.now()
        await self.write(lambda conn: record_outcomes(conn, [outcome], done))

    async def _send(self, item: Claimed) -> Outcome:
        kind = item.integration.partition("/")[0]
        receiver = self.config.receiver(item.receiver)
        integration = receiver.integrations().get(item.integration) if receiver else None
        if integration is None or kind not in SENDERS:
            return Outcome(item.id, f"receiver {item.receiver} has no integration {item.integration} any more", None)
        if kind == "email" and isinstance(item.payload.get("recipient"), str):
            # A page to an on-call user goes through the receiver's mail server to that user's address.
            integration = integration.model_copy(update={"to": item.payload["recipient"]})
        try:
            if isinstance(integration, LogConfig):  # the stored JSON is the line, as is
                await log_channel.send_stored(integration, item.payload, item.text)
            else:
                await SENDERS[kind](integration, item.payload, self.context)
        except DeliveryFailed as exc:
            return self._failed(item, exc)
        except Exception as exc:  # a bug in a channel must not stop the others
            log.exception("notification %s to %s failed", item.id, item.integration)
            return Outcome(item.id, f"{type(exc).__name__}: {exc}", None)
        return Outcome(item.id, None, None)

    def _failed(self, item: Claimed, exc: DeliveryFailed) -> Outcome:
        attempt = item.attempts + 1
        log.warning("notification %s to %s/%s failed (attempt %s): %s", item.id, item.receiver, item.integration,
                    attempt, exc)
        if not exc.retryable or attempt >= self.settings.delivery_max_attempts:
            return Outcome(item.id, str(exc), None)
        delay = backoff(attempt, max_backoff=self.settings.delivery_max_backoff_seconds, rng=self.rng)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER))
        return Outcome(item.id, str(exc), self.clock.now() + delay)
