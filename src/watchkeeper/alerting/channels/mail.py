"""E-mail over SMTP: multipart/alternative (text and HTML), STARTTLS by default or implicit TLS,
optional login; the messages of one group form one thread (References / In-Reply-To).

smtplib runs in a worker thread: a slow mail server must not stall the event loop. The server's name is
resolved and judged by the outbound guard first, and smtplib connects to that very address (the name
still verifies the certificate), so a smarthost cannot reach a private network the guard refuses.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from watchkeeper.alerting.channels import ChannelContext, DeliveryFailed, alert_line, title
from watchkeeper.alerting.routing import EmailConfig
from watchkeeper.lib.outbound import TargetBlocked


def thread_id(group_key: str) -> str:
    return f"<{hashlib.sha256(group_key.encode()).hexdigest()[:32]}@watchkeeper>"


def compose(payload: dict[str, Any], config: EmailConfig, now: float) -> EmailMessage:
    """The message for a group notification."""
    subject = title(payload)
    lines = [subject, ""]
    rows = []
    for alert in payload["alerts"]:
        lines.append(f"- {alert['status']}: {alert_line(alert)}")
        description = alert["annotations"].get("description")
        if description:
            lines.append(f"  {description}")
        source = alert.get("generatorURL") or ""
        if source:
            lines.append(f"  Source: {source}")
        rows.append(f"<li><b>{html.escape(alert['status'])}</b> {html.escape(alert_line(alert))}"
                    + (f"<br>{html.escape(description)}" if description else "")
                    + (f'<br><a href="{html.escape(source)}">Source</a>' if source else "") + "</li>")
    if payload.get("truncatedAlerts"):
        lines.append(f"- and {payload['truncatedAlerts']} more alerts")
        rows.append(f"<li>and {int(payload['truncatedAlerts'])} more alerts</li>")
    if payload.get("externalURL"):
        lines += ["", f"Watchkeeper: {payload['externalURL']}"]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.from_
    message["To"] = config.to
    message["Date"] = formatdate(now)
    message["Message-ID"] = f"<{uuid.uuid4().hex}@watchkeeper>"
    # Every notification of a group refers to the same (virtual) first message: mail clients thread them.
    message["References"] = message["In-Reply-To"] = thread_id(payload["groupKey"])
    message.set_content("\n".join(lines))
    message.add_alternative(f"<html><body><h3>{html.escape(subject)}</h3><ul>{''.join(rows)}</ul></body></html>",
                            subtype="html")
    return message


class _PinnedSMTP(smtplib.SMTP):
    """smtplib's client connected to the address the guard checked; `_host` (the name) stays for
    STARTTLS certificate verification."""

    def __init__(self, address: str, host: str, port: int, **options: Any) -> None:
        self.pinned_address = address
        super().__init__(host, port, **options)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        return super()._get_socket(self.pinned_address, port, timeout)  # type: ignore[misc]


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    """Implicit TLS to the checked address, verifying the certificate against the name."""

    def __init__(self, address: str, host: str, port: int, **options: Any) -> None:
        self.pinned_address = address
        super().__init__(host, port, **options)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        return super()._get_socket(self.pinned_address, port, timeout)  # type: ignore[misc]


def smarthost_address(config: EmailConfig) -> tuple[str, int]:
    host, _, port_text = config.smarthost.rpartition(":")
    return host.strip("[]"), int(port_text)


def _deliver(message: EmailMessage, config: EmailConfig, address: str, timeout: float) -> None:
    host, port = smarthost_address(config)
    context = ssl.create_default_context()
    if config.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    implicit_tls = config.tls or port == 465
    smtp: smtplib.SMTP = (_PinnedSMTPSSL(address, host, port, timeout=timeout, context=context) if implicit_tls
                          else _PinnedSMTP(address, host, port, timeout=timeout))
    with smtp:
        if not implicit_tls and config.require_tls:
            smtp.starttls(context=context)
        if config.auth_username:
            password = config.auth_password.get_secret_value() if config.auth_password else ""
            smtp.login(config.auth_username, password)
        smtp.send_message(message)


async def send(config: EmailConfig, payload: dict[str, Any], ctx: ChannelContext) -> None:
    message = compose(payload, config, ctx.clock.now())
    try:
        address = await ctx.resolve(*smarthost_address(config))
    except TargetBlocked as exc:
        raise DeliveryFailed(f"SMTP: {exc}", retryable=False) from None
    except OSError as exc:
        raise DeliveryFailed(f"SMTP: {exc}", retryable=True) from None
    try:
        await asyncio.to_thread(_deliver, message, config, address, ctx.timeout)
    except smtplib.SMTPResponseException as exc:
        # 4xx is "try again later", 5xx is final (RFC 5321).
        raise DeliveryFailed(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=400 <= exc.smtp_code < 500) \
            from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryFailed(f"SMTP: {exc}", retryable=False) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from None
