"""PagerDuty Events API v2: one incident per group (dedup_key from the group key), triggered while
alerts fire and resolved when all are resolved. 400 is final; 429 and 5xx are retried."""

from __future__ import annotations

import hashlib
from typing import Any

from watchkeeper.alerting.channels import ChannelContext, alert_line, check_response, cut, firing_count, post, title
from watchkeeper.alerting.routing import PagerDutyConfig

MAX_SUMMARY_CHARS = 1024
# Watchkeeper severities to PagerDuty's four.
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


def dedup_key(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def event(payload: dict[str, Any], config: PagerDutyConfig) -> dict[str, Any]:
    """The Events v2 body for a group notification."""
    firing = [a for a in payload["alerts"] if a["status"] == "firing"]
    action = "trigger" if payload["status"] == "firing" else "resolve"
    body: dict[str, Any] = {
        "routing_key": config.routing_key.get_secret_value(),
        "event_action": action,
        "dedup_key": dedup_key(payload["groupKey"]),
    }
    if action == "trigger":
        severity = payload["commonLabels"].get("severity") or firing[0]["labels"].get("severity", "")
        summary = title(payload) + (": " + alert_line(firing[0]) if len(firing) == 1 else "")
        body["payload"] = {
            "summary": cut(summary, MAX_SUMMARY_CHARS),
            "source": config.source,
            "severity": SEVERITY.get(severity, "error"),
            "group": payload["groupLabels"].get("alertname"),
            "component": payload["commonLabels"].get("service"),
            "custom_details": {"firing": [alert_line(a) for a in firing][:100],
                               "num_firing": firing_count(payload), "group_labels": payload["groupLabels"]},
        }
        # The page of what caused each alert (at most 10), then Watchkeeper itself.
        links = [{"href": a["generatorURL"], "text": alert_line(a)[:100]} for a in firing[:10] if a.get("generatorURL")]
        if payload.get("externalURL"):
            links.append({"href": payload["externalURL"], "text": "Watchkeeper"})
        if links:
            body["links"] = links
    return body


async def send(config: PagerDutyConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    response = await post(ctx, config.url, json=event(payload, config))
    check_response(response, ctx.clock.now())
