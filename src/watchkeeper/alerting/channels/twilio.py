"""Twilio SMS: one message per notification (`Body` at most 1,600 characters) to each number."""

from __future__ import annotations

from typing import Any

import httpx

from watchkeeper.alerting.channels import ChannelContext, DeliveryFailed, alert_line, check_response, cut, title
from watchkeeper.alerting.routing import TwilioConfig
from watchkeeper.lib.outbound import TargetBlocked

MAX_BODY_CHARS = 1600


def body(payload: dict[str, Any]) -> str:
    lines = [title(payload), *(alert_line(a) for a in payload["alerts"] if a["status"] == "firing")]
    return cut("\n".join(lines), MAX_BODY_CHARS)


async def send(config: TwilioConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    url = f"{config.api_url.rstrip('/')}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
    auth = (config.account_sid, config.auth_token.get_secret_value())
    text = body(payload)
    for number in config.to:
        try:
            response = await ctx.client.post(url, data={"To": number, "From": config.from_, "Body": text},
                                              auth=auth, timeout=ctx.timeout)
        except TargetBlocked as exc:
            raise DeliveryFailed(str(exc), retryable=False) from None
        except httpx.TimeoutException:
            raise DeliveryFailed(f"timed out after {ctx.timeout:g} s", retryable=True) from None
        except (httpx.HTTPError, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", retryable=True) from None
        check_response(response, ctx.clock.now())
