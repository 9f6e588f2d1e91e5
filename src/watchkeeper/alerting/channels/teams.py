"""Microsoft Teams through a Workflows webhook: a message with one Adaptive Card (Office 365
connectors are retired)."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.channels import ChannelContext, alert_count, alert_line, check_response, cut, post, title
from watchkeeper.alerting.routing import TeamsConfig

MAX_LINES = 50


def card(payload: dict[str, Any]) -> dict[str, Any]:
    alerts = payload["alerts"]
    body: list[dict[str, Any]] = [{"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
                                   "text": title(payload)}]
    body += [{"type": "TextBlock", "wrap": True, "text": cut(f"**{a['status']}** {alert_line(a)}", 1000)
              + (f" [Source]({a['generatorURL']})" if a.get("generatorURL") else "")}
             for a in alerts[:MAX_LINES]]
    total = alert_count(payload)
    if total > MAX_LINES:
        body.append({"type": "TextBlock", "text": f"and {total - min(MAX_LINES, len(alerts))} more alerts"})
    content: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                               "type": "AdaptiveCard", "version": "1.4", "body": body}
    if payload.get("externalURL"):
        content["actions"] = [{"type": "Action.OpenUrl", "title": "Open Watchkeeper", "url": payload["externalURL"]}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}]}


async def send(config: TeamsConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    response = await post(ctx, config.webhook_url, json=card(payload))
    check_response(response, ctx.clock.now())
