"""Discord webhook: a short `content` line and one embed per alert (at most 10 embeds; title 256,
description 4096 characters, content 2000)."""

from __future__ import annotations

from typing import Any

from watchkeeper.alerting.channels import ChannelContext, alert_count, alert_line, check_response, cut, post, title
from watchkeeper.alerting.routing import DiscordConfig

MAX_EMBEDS = 10
COLOURS = {"firing": 0xD92D20, "resolved": 0x12B76A}


def message(payload: dict[str, Any]) -> dict[str, Any]:
    alerts = payload["alerts"]
    embeds = [{"title": cut(alert_line(a), 256),
               "description": cut(a["annotations"].get("description", "") or a["status"], 4096),
               "color": COLOURS.get(a["status"], 0), **({"url": a["generatorURL"]} if a.get("generatorURL") else {})}
              for a in alerts[:MAX_EMBEDS]]
    total = alert_count(payload)
    more = f" (showing {min(MAX_EMBEDS, len(alerts))} of {total})" if total > MAX_EMBEDS else ""
    return {"content": cut(title(payload) + more, 2000), "embeds": embeds}


async def send(config: DiscordConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    response = await post(ctx, config.webhook_url, json=message(payload))
    check_response(response, ctx.clock.now())
