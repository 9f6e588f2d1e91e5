"""Opsgenie: create an alert per group (alias = the group's dedup key) while alerts fire, close it by
alias when all are resolved. `message` is cut at 130 characters, as Opsgenie requires."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from watchkeeper.alerting.channels import ChannelContext, alert_line, check_response, cut, post, title
from watchkeeper.alerting.routing import OpsgenieConfig

MAX_MESSAGE_CHARS = 130
MAX_DESCRIPTION_CHARS = 15000
PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}


def alias(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def create_body(payload: dict[str, Any]) -> dict[str, Any]:
    firing = [a for a in payload["alerts"] if a["status"] == "firing"]
    severity = payload["commonLabels"].get("severity") or (firing[0]["labels"].get("severity") if firing else "")
    return {
        "message": cut(title(payload), MAX_MESSAGE_CHARS),
        "alias": alias(payload["groupKey"]),
        "description": cut("\n".join(alert_line(a) for a in firing), MAX_DESCRIPTION_CHARS),
        "priority": PRIORITY.get(severity or "", "P3"),
        "source": "watchkeeper",
        "tags": sorted(f"{k}={v}" for k, v in payload["groupLabels"].items())[:20],
        "details": {k: cut(v, 500) for k, v in payload["commonLabels"].items()},
    }


async def send(config: OpsgenieConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    base = config.api_url.rstrip("/")
    headers = {"Authorization": f"GenieKey {config.api_key.get_secret_value()}"}
    if payload["status"] == "firing":
        response = await post(ctx, f"{base}/v2/alerts", json=create_body(payload), headers=headers)
    else:
        url = f"{base}/v2/alerts/{quote(alias(payload['groupKey']))}/close?identifierType=alias"
        response = await post(ctx, url, json={"source": "watchkeeper", "note": "resolved"}, headers=headers)
    check_response(response, ctx.clock.now())
