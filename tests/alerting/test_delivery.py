"""The outbox worker against local receivers: channels' payloads, retries, Retry-After, final failures,
leases after a crash; a manual clock drives every retry."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import ssl
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from tests.alerting.conftest import in_transaction
from tests.alerting.receivers import Answer, HttpReceiver, SmtpReceiver
from watchkeeper.alerting.alerts import Alert, fingerprint
from watchkeeper.alerting.dispatch import AggregationGroup, webhook_payload
from watchkeeper.alerting.outbox import DeliveryWorker, claim_due
from watchkeeper.alerting.routing import build_routes, parse_config
from watchkeeper.alerting.tables import notification_outbox
from watchkeeper.app import Runtime
from watchkeeper.config import AlertingSettings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.lib.outbound import Outbound
from watchkeeper.store.writer import call_each


def payload_for(clock: ManualClock, count: int = 1, *, resolved: bool = False, description: str = "",
                severity: str = "critical") -> dict[str, Any]:
    now = clock.now()
    alerts = []
    for index in range(count):
        labels = {"alertname": "Down", "severity": severity, "priority": "P0", "monitor": str(index)}
        alerts.append(Alert(fingerprint(labels), labels, {"summary": f"api {index} is down",
                                                          "description": description},
                            "firing", now - 60, now - 60, now if resolved else None))
    route = build_routes(parse_config({"route": {"receiver": "r"}, "receivers": [{"name": "r"}]}).route)
    group = AggregationGroup('{}:{alertname="Down"}', route, {"alertname": "Down"}, now)
    return webhook_payload(group, "team", alerts, now, "http://wk.test")


def queue(engine: Engine, clock: ManualClock, integration: str, payload: dict[str, Any]) -> int:
    row = {"receiver": "team", "integration": integration, "group_key": payload["groupKey"],
           "payload": orjson.dumps(payload).decode(), "status": "pending", "attempts": 0,
           "next_attempt_at": clock.now(), "created_at": clock.now()}
    return int(in_transaction(engine, lambda conn: conn.execute(
        notification_outbox.insert().values(row)).inserted_primary_key[0]))


def outbox_row(engine: Engine, row_id: int) -> Any:
    return in_transaction(engine, lambda conn: conn.execute(
        select(notification_outbox).where(notification_outbox.c.id == row_id)).one())


def deliver(runtime: Runtime, clock: ManualClock, receivers: list[dict[str, Any]], *,
            allow_private: bool = True, outcomes: list[tuple[str, str]] | None = None, **settings: Any) -> int:
    config = parse_config({"route": {"receiver": "team"}, "receivers": receivers})
    alerting = AlertingSettings(**{"delivery_timeout_seconds": 2.0, **settings})
    outbound_settings = runtime.settings.outbound.model_copy(update={"allow_private_targets": allow_private})

    def note(kind: str, outcome: str) -> None:
        if outcomes is not None:
            outcomes.append((kind, outcome))

    async def run() -> int:
        async with Outbound(outbound_settings) as outbound:
            worker = DeliveryWorker(lambda f: runtime.writer.run(call_each, f), clock, alerting, config,
                                    outbound, rng=random.Random(7),
                                    on_outcome=note)
            return await worker.deliver_due()

    return asyncio.run(run())


@pytest.fixture
def http() -> Any:
    with HttpReceiver() as receiver:
        yield receiver


def test_webhook_gets_the_v4_payload_signed(runtime: Runtime, engine: Engine, clock: ManualClock,
                                            http: HttpReceiver) -> None:
    row_id = queue(engine, clock, "webhook/0", payload_for(clock, 3))
    team = [{"name": "team", "webhook_configs": [{"url": f"{http.url}/hook", "hmac_secret": "s3cret",
                                                  "max_alerts": 2}]}]
    assert deliver(runtime, clock, team) == 1
    (request,) = http.requests
    body = request.json()
    assert body["version"] == "4" and body["status"] == "firing" and body["truncatedAlerts"] == 1
    assert len(body["alerts"]) == 2 and body["alerts"][0]["fingerprint"]
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Watchkeeper-Signature"] == f"sha256={expected}"
    row = outbox_row(engine, row_id)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, clock.now())
    assert deliver(runtime, clock, team) == 0  # sent once


def test_5xx_is_retried_no_sooner_than_retry_after(runtime: Runtime, engine: Engine, clock: ManualClock,
                                                   http: HttpReceiver) -> None:
    http.answer(Answer(503, {"Retry-After": "7"}, b"busy"))
    row_id = queue(engine, clock, "webhook/0", payload_for(clock))
    team = [{"name": "team", "webhook_configs": [{"url": http.url}]}]
    deliver(runtime, clock, team)
    row = outbox_row(engine, row_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, clock.now() + 7)
    assert "HTTP 503" in row.last_error
    clock.advance(6.9)
    assert deliver(runtime, clock, team) == 0
    clock.advance(0.1)
    assert deliver(runtime, clock, team) == 1
    assert len(http.requests) == 2 and outbox_row(engine, row_id).status == "sent"


def test_429_and_timeouts_back_off_exponentially_with_jitter(runtime: Runtime, engine: Engine,
                                                              clock: ManualClock, http: HttpReceiver) -> None:
    http.answer(Answer(429), Answer(200, delay=1.0), Answer(500))
    row_id = queue(engine, clock, "webhook/0", payload_for(clock))
    team = [{"name": "team", "webhook_configs": [{"url": http.url}]}]
    delays = []
    for _ in range(3):
        start = clock.now()
        deliver(runtime, clock, team, delivery_timeout_seconds=0.3)
        row = outbox_row(engine, row_id)
        delays.append(row.next_attempt_at - start)
        clock.set(row.next_attempt_at)
    assert 0.5 <= delays[0] <= 1 and 1 <= delays[1] <= 2 and 2 <= delays[2] <= 4  # 1, 2, 4 s times [0.5, 1]
    deliver(runtime, clock, team)
    assert outbox_row(engine, row_id).status == "sent"
    assert outbox_row(engine, row_id).attempts == 4


def test_a_timeout_is_a_retryable_failure(runtime: Runtime, engine: Engine, clock: ManualClock,
                                          http: HttpReceiver) -> None:
    http.answer(Answer(200, delay=1.0))
    row_id = queue(engine, clock, "webhook/0", payload_for(clock))
    deliver(runtime, clock, [{"name": "team", "webhook_configs": [{"url": http.url}]}],
            delivery_timeout_seconds=0.2)
    row = outbox_row(engine, row_id)
    assert row.status == "pending" and row.last_error == "timed out after 0.2 s"


def test_4xx_and_too_many_attempts_are_final(runtime: Runtime, engine: Engine, clock: ManualClock,
                                             http: HttpReceiver) -> None:
    http.answer(Answer(400, body=b"bad"), Answer(502), Answer(502))
    bad = queue(engine, clock, "webhook/0", payload_for(clock))
    team = [{"name": "team", "webhook_configs": [{"url": http.url}]}]
    outcomes: list[tuple[str, str]] = []
    deliver(runtime, clock, team, outcomes=outcomes)
    assert (outbox_row(engine, bad).status, outbox_row(engine, bad).last_error) == ("failed", "HTTP 400: bad")
    assert outcomes == [("webhook", "failed")]  # what /metrics counts
    worn = queue(engine, clock, "webhook/0", payload_for(clock))
    deliver(runtime, clock, team, delivery_max_attempts=2)
    clock.set(outbox_row(engine, worn).next_attempt_at)
    deliver(runtime, clock, team, delivery_max_attempts=2)
    assert (outbox_row(engine, worn).status, outbox_row(engine, worn).attempts) == ("failed", 2)


def test_private_targets_are_refused_without_retry_when_the_guard_is_on(runtime: Runtime, engine: Engine,
                                                                        clock: ManualClock,
                                                                        http: HttpReceiver) -> None:
    row_id = queue(engine, clock, "webhook/0", payload_for(clock))
    deliver(runtime, clock, [{"name": "team", "webhook_configs": [{"url": http.url}]}], allow_private=False)
    row = outbox_row(engine, row_id)
    assert row.status == "failed" and "private or loopback" in row.last_error
    assert http.requests == []


def test_a_claim_lost_in_a_crash_comes_back_after_its_lease(runtime: Runtime, engine: Engine, clock: ManualClock,
                                                            http: HttpReceiver) -> None:
    row_id = queue(engine, clock, "webhook/0", payload_for(clock))
    (claimed,) = in_transaction(engine, lambda conn: claim_due(conn, clock.now(), lease=60))
    assert claimed.id == row_id  # ... and the process dies before sending
    team = [{"name": "team", "webhook_configs": [{"url": http.url}]}]
    assert deliver(runtime, clock, team) == 0  # leased: not sent twice meanwhile
    clock.advance(60)
    assert deliver(runtime, clock, team) == 1
    assert len(http.requests) == 1


def test_slack_blocks_respect_slack_limits(runtime: Runtime, engine: Engine, clock: ManualClock,
                                           http: HttpReceiver) -> None:
    queue(engine, clock, "slack/0", payload_for(clock, 60, description="x" * 5000))
    deliver(runtime, clock, [{"name": "team", "slack_configs": [{"api_url": http.url, "channel": "#ops"}]}])
    body = http.requests[0].json()
    assert body["channel"] == "#ops" and body["text"] == "[FIRING:60] Down"
    assert len(body["blocks"]) <= 50
    sections = [b for b in body["blocks"] if b["type"] == "section"]
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert sections[0]["text"]["text"].startswith("*firing* [P0] api 0 is down")
    assert body["blocks"][-1]["elements"][0]["text"] == "and 12 more alerts"


def test_pagerduty_triggers_and_resolves_with_one_dedup_key(runtime: Runtime, engine: Engine,
                                                            clock: ManualClock, http: HttpReceiver) -> None:
    http.answer(Answer(202, body=b'{"status":"success"}'), Answer(202, body=b'{"status":"success"}'))
    queue(engine, clock, "pagerduty/0", payload_for(clock, description="y"))
    long_summary = payload_for(clock, resolved=True)
    queue(engine, clock, "pagerduty/0", long_summary)
    team = [{"name": "team", "pagerduty_configs": [{"routing_key": "R0UT1NG", "url": f"{http.url}/v2/enqueue"}]}]
    deliver(runtime, clock, team)
    trigger, resolve = (r.json() for r in http.requests)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] and trigger["routing_key"] == "R0UT1NG"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == "[FIRING:1] Down: [P0] api 0 is down"
    assert http.requests[0].path == "/v2/enqueue"


def test_pagerduty_summary_is_cut_at_1024(clock: ManualClock) -> None:
    from watchkeeper.alerting.channels.pagerduty import event
    from watchkeeper.alerting.routing import PagerDutyConfig

    payload = payload_for(clock)
    payload["alerts"][0]["annotations"]["summary"] = "z" * 3000
    summary = event(payload, PagerDutyConfig(routing_key="k"))["payload"]["summary"]  # type: ignore[arg-type]
    assert len(summary) == 1024 and summary.endswith("…")


def test_email_is_multipart_and_threaded(runtime: Runtime, engine: Engine, clock: ManualClock) -> None:
    with SmtpReceiver() as smtp:
        queue(engine, clock, "email/0", payload_for(clock, 2, description="<script>x</script>"))
        queue(engine, clock, "email/0", payload_for(clock, 2, resolved=True))
        deliver(runtime, clock, [{"name": "team", "email_configs": [
            {"to": "oncall@example.com", "from": "wk@example.com", "smarthost": smtp.smarthost,
             "require_tls": False}]}])
        assert len(smtp.messages) == 2
        (sender, recipients, first), (_, _, second) = smtp.messages
    assert sender == "wk@example.com" and recipients == ["oncall@example.com"]
    assert first["Subject"] == "[FIRING:2] Down" and second["Subject"] == "[RESOLVED] Down"
    assert first["References"] == second["References"] == second["In-Reply-To"]
    assert first.get_content_type() == "multipart/alternative"
    text, html = first.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain" and "api 1 is down" in text.get_payload()
    assert html.get_content_type() == "text/html" and "&lt;script&gt;" in html.get_payload()


def test_email_to_a_private_smtp_server_is_refused_by_the_guard(runtime: Runtime, engine: Engine,
                                                                 clock: ManualClock) -> None:
    with SmtpReceiver() as smtp:
        port = smtp.smarthost.rpartition(":")[2]
        # By address and by a name that resolves to loopback: neither reaches the server.
        for smarthost in (smtp.smarthost, f"localhost:{port}"):
            row_id = queue(engine, clock, "email/0", payload_for(clock))
            deliver(runtime, clock, [{"name": "team", "email_configs": [
                {"to": "oncall@example.com", "smarthost": smarthost, "require_tls": False}]}], allow_private=False)
            row = outbox_row(engine, row_id)
            assert row.status == "failed" and "private or loopback" in row.last_error, row.last_error
        assert smtp.messages == []
        # Allowed (the development profile), the same server gets the message.
        row_id = queue(engine, clock, "email/0", payload_for(clock))
        deliver(runtime, clock, [{"name": "team", "email_configs": [
            {"to": "oncall@example.com", "smarthost": f"localhost:{port}", "require_tls": False}]}])
        assert outbox_row(engine, row_id).status == "sent" and len(smtp.messages) == 1


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_email_uses_starttls_and_logs_in(runtime: Runtime, engine: Engine, clock: ManualClock,
                                         tmp_path: Path) -> None:
    with SmtpReceiver(tls_context=_self_signed(tmp_path), auth=("alerts", "pw")) as smtp:
        row_id = queue(engine, clock, "email/0", payload_for(clock))
        deliver(runtime, clock, [{"name": "team", "email_configs": [
            {"to": "a@example.com", "smarthost": smtp.smarthost, "insecure_skip_verify": True,
             "auth_username": "alerts", "auth_password": "pw"}]}])
        # The server requires STARTTLS before AUTH and MAIL: a message arrived, so both happened.
        assert len(smtp.messages) == 1
    assert outbox_row(engine, row_id).status == "sent"


def test_opsgenie_creates_and_closes_by_alias(runtime: Runtime, engine: Engine, clock: ManualClock,
                                              http: HttpReceiver) -> None:
    payload = payload_for(clock, 2, severity="high")
    payload["groupLabels"]["alertname"] = "D" * 200  # a long title: Opsgenie takes 130 characters
    queue(engine, clock, "opsgenie/0", payload)
    queue(engine, clock, "opsgenie/0", payload_for(clock, resolved=True))
    deliver(runtime, clock, [{"name": "team", "opsgenie_configs": [{"api_key": "g3n13", "api_url": http.url}]}])
    create, close = http.requests
    assert create.path == "/v2/alerts" and create.headers["Authorization"] == "GenieKey g3n13"
    body = create.json()
    assert len(body["message"]) == 130 and body["priority"] == "P2"
    assert close.path == f"/v2/alerts/{body['alias']}/close?identifierType=alias"


def test_discord_and_teams_messages(runtime: Runtime, engine: Engine, clock: ManualClock,
                                    http: HttpReceiver) -> None:
    http.answer(Answer(204, body=b""), Answer(202, body=b""))
    queue(engine, clock, "discord/0", payload_for(clock, 12))
    queue(engine, clock, "teams/0", payload_for(clock, 2))
    deliver(runtime, clock, [{"name": "team", "discord_configs": [{"webhook_url": f"{http.url}/discord"}],
                              "teams_configs": [{"webhook_url": f"{http.url}/teams"}]}])
    by_path = {r.path: r.json() for r in http.requests}
    discord = by_path["/discord"]
    assert discord["content"] == "[FIRING:12] Down (showing 10 of 12)" and len(discord["embeds"]) == 10
    card = by_path["/teams"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["body"][0]["text"] == "[FIRING:2] Down"


def test_a_receiver_down_for_two_minutes_gets_each_notification_once_when_back(
        runtime: Runtime, engine: Engine, clock: ManualClock, http: HttpReceiver) -> None:
    groups = []
    for name in ("Down", "Slow", "Errors"):
        payload = payload_for(clock)
        payload["groupKey"] = f'{{}}:{{alertname="{name}"}}'
        groups.append(payload["groupKey"])
        queue(engine, clock, "webhook/0", payload)
    team = [{"name": "team", "webhook_configs": [{"url": http.url}]}]
    http.default = Answer(503)
    back_at = clock.now() + 120
    while clock.now() < back_at:
        deliver(runtime, clock, team)
        due = in_transaction(engine, lambda conn: conn.execute(
            select(notification_outbox.c.next_attempt_at).where(notification_outbox.c.status == "pending")
        ).scalars().all())
        clock.set(min(due))
    http.default = Answer(200)
    clock.set(max(due))
    while deliver(runtime, clock, team):
        pass
    accepted = [r.json()["groupKey"] for r in http.requests if r.status == 200]
    assert sorted(accepted) == sorted(groups)  # each exactly once
    assert len(http.requests) > 3 * 5  # it was retried while down


def test_twilio_sends_one_sms_per_number(runtime: Runtime, engine: Engine, clock: ManualClock,
                                         http: HttpReceiver) -> None:
    from urllib.parse import parse_qs

    http.answer(Answer(201, body=b"{}"), Answer(201, body=b"{}"))
    queue(engine, clock, "twilio/0", payload_for(clock, 300, description="z"))
    deliver(runtime, clock, [{"name": "team", "twilio_configs": [
        {"account_sid": "AC123", "auth_token": "t0k3n", "from": "+15550001", "to": ["+15550002", "+15550003"],
         "api_url": http.url}]}])
    first, second = http.requests
    assert first.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert first.headers["Authorization"].startswith("Basic ")
    form = parse_qs(first.body.decode())
    assert form["To"] == ["+15550002"] and form["From"] == ["+15550001"]
    assert len(form["Body"][0]) == 1600 and form["Body"][0].startswith("[FIRING:300] Down")
    assert parse_qs(second.body.decode())["To"] == ["+15550003"]
