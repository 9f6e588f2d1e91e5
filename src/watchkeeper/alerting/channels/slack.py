"""Slack incoming webhook with Block Kit: a header, one section per alert (at most 50 blocks, section
text at most 3000 characters), and `text` as the notification fallback."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.channels import ChannelContext, alert_count, alert_line, check_response, cut, post, title
from watchkeeper.alerting.routing import SlackConfig

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150


def message(payload: dict[str, Any], config: SlackConfig) -> dict[str, Any]:
    """The Slack message for a group notification."""
    heading = title(payload)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text",
                                                                "text": cut(heading, MAX_HEADER_CHARS)}}]
    alerts = payload["alerts"]
    room = MAX_BLOCKS - 2
    for alert in alerts[:room]:
        text = f"*{alert['status']}* {alert_line(alert)}"
        if alert["annotations"].get("description"):
            text += "\n" + alert["annotations"]["description"]
        if alert["annotations"].get("runbook_url"):
            text += f"\n<{alert['annotations']['runbook_url']}|Runbook>"
        if alert.get("generatorURL"):
            text += f"\n<{alert['generatorURL']}|Source>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION_CHARS)}})
    total = alert_count(payload)
    if total > room:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {total - min(room, len(alerts))} more alerts"}]})
    body: dict[str, Any] = {"text": cut(heading, MAX_SECTION_CHARS), "blocks": blocks}
    if config.channel:
        body["channel"] = config.channel
    if config.username:
        body["username"] = config.username
    return body


async def send(config: SlackConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    response = await post(ctx, config.api_url, json=message(payload, config))
    check_response(response, ctx.clock.now())
