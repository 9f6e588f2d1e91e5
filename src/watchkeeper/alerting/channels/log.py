"""The log channel: the notification as one JSON line in the server log (the default receiver)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from watchkeeper.alerting.channels import ChannelContext, title
from watchkeeper.alerting.routing import LogConfig

log = logging.getLogger("watchkeeper.alerts")


async def send(config: LogConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    log.warning("%s %s", title(payload), orjson.dumps(payload).decode())


async def send_stored(config: LogConfig, payload: dict[str, Any], text: str) -> None:
    """`send` for a payload stored as `orjson.dumps(payload)` (the outbox): the same line, without
    serialising it again."""
    log.warning("%s %s", title(payload), text)
