"""Generic webhook: the Alertmanager v4 payload, signed with HMAC-SHA256 when a secret is set.

The receiver checks `X-Watchkeeper-Signature: sha256=<hex>` against the HMAC of the raw body.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from watchkeeper.alerting.channels import ChannelContext, alert_count, check_response, post
from watchkeeper.alerting.routing import WebhookConfig

SIGNATURE_HEADER = "X-Watchkeeper-Signature"


def sign(secret: str, body: bytes) -> str:
    """>>> sign("k", b"{}")[:15]
    'sha256=5c38d7c4'
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def truncate(payload: dict[str, Any], max_alerts: int) -> dict[str, Any]:
    if not max_alerts or len(payload["alerts"]) <= max_alerts:
        return payload
    return {**payload, "alerts": payload["alerts"][:max_alerts],
            "truncatedAlerts": alert_count(payload) - max_alerts}


async def send(config: WebhookConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    body = orjson.dumps(truncate(payload, config.max_alerts))
    headers = {"Content-Type": "application/json"}
    if config.hmac_secret is not None:
        headers[SIGNATURE_HEADER] = sign(config.hmac_secret.get_secret_value(), body)
    response = await post(ctx, config.url, content=body, headers=headers)
    check_response(response, ctx.clock.now())
