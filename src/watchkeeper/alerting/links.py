"""Links in notifications and pages: signed action links, and the page of what caused an alert.

Signed action links acknowledge or resolve an incident with one click, no login.

A link is `<incident>.<action>.<expires>.<nonce>.<signature>`, the signature an HMAC-SHA256 of the rest
under the server's link secret. A link works once (its nonce is recorded when used) and until it
expires; a forged, expired or used link is refused with a page that says which.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from watchkeeper.alerting.incident_tables import alerting_secrets, incident_links
from watchkeeper.store.dialect import upsert

ACTIONS = ("acknowledge", "resolve")
SECRET_NAME = "incident_links"


class LinkRefused(Exception):
    """The link cannot be used; `reason` is "forged", "expired" or "used"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ActionLink:
    incident_id: int
    action: str
    expires_at: int
    nonce: str


def _signature(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: bytes, incident_id: int, action: str, expires_at: float) -> str:
    """A link token.

    >>> token = sign(b"k", 3, "acknowledge", 2e9); verify(b"k", token, now=1e9).incident_id
    3
    """
    body = f"{incident_id}.{action}.{int(expires_at)}.{secrets.token_hex(8)}"
    return f"{body}.{_signature(secret, body)}"


def verify(secret: bytes, token: str, *, now: float) -> ActionLink:
    """The link's content if its signature is ours and it has not expired (use is checked by `use`)."""
    parts = token.split(".")
    if len(parts) != 5 or len(token) > 200:
        raise LinkRefused("forged", "This link is not a Watchkeeper link (it may have been cut or altered).")
    incident, action, expires, nonce, signature = parts
    if not hmac.compare_digest(_signature(secret, ".".join(parts[:4])), signature):
        raise LinkRefused("forged", "This link is not a Watchkeeper link (it may have been cut or altered).")
    if not incident.isdigit() or action not in ACTIONS or not expires.isdigit():
        raise LinkRefused("forged", "This link is not a Watchkeeper link.")
    if int(expires) <= now:
        raise LinkRefused("expired", "This link has expired. Open the incident in Watchkeeper instead.")
    return ActionLink(int(incident), action, int(expires), nonce)


def use(conn: Connection, link: ActionLink, *, now: float) -> None:
    """Record the link as used, in the transaction of the action; LinkRefused("used") the second time.
    Two clicks at once: the primary key lets one insert through, the other fails and rolls back."""
    used = conn.scalar(select(incident_links.c.used_at).where(incident_links.c.nonce == link.nonce))
    if used is not None:
        raise LinkRefused("used", "This link was used already; each link works once.")
    conn.execute(insert(incident_links).values(nonce=link.nonce, incident_id=link.incident_id, action=link.action,
                                               used_at=now))


def stored_secret(conn: Connection) -> bytes:
    """The link secret kept in the database (made on first use), for servers whose settings give none;
    every process of a PostgreSQL deployment reads the same one."""
    value = conn.scalar(select(alerting_secrets.c.value).where(alerting_secrets.c.name == SECRET_NAME))
    if value is None:
        statement = upsert(conn, alerting_secrets).values(name=SECRET_NAME, value=secrets.token_hex(32))
        conn.execute(statement.on_conflict_do_nothing(index_elements=["name"]))
        value = conn.scalar(select(alerting_secrets.c.value).where(alerting_secrets.c.name == SECRET_NAME))
    return bytes.fromhex(str(value))


# --- where an alert comes from --------------------------------------------------------------------------


def cause_of(labels: Mapping[str, str], generator_url: str | None = None) -> str:
    """The page of what an alert is about: its issue, its monitor, else its project's issues; an outside
    alert's own generatorURL (http or https only); else the alerts page. A path of ours or a full URL.

    >>> cause_of({"issue": "7", "project_id": "1"})
    '/issues/7'
    """
    if generator_url and generator_url.startswith(("https://", "http://")):
        return generator_url
    for label, page in (("issue", "/issues/{}"), ("monitor", "/monitors/{}"), ("project_id", "/projects/{}/issues")):
        value = labels.get(label, "")
        if value.isdigit() and len(value) < 19:
            return page.format(value)
    return "/alerting/alerts"


def absolute(base_url: str, link: str) -> str:
    """`link` as a full URL under the server's public address (`public_url`, else where it listens).

    >>> absolute("https://wk.example.com", "/issues/7")
    'https://wk.example.com/issues/7'
    """
    return link if link.startswith(("https://", "http://")) else f"{base_url.rstrip('/')}{link}"


def cause_title(link: str) -> str:
    """What a cause link is called on pages.

    >>> cause_title("/monitors/3")
    'Monitor #3'
    """
    parts = link.split("/")
    if link.startswith("/issues/"):
        return f"Issue #{parts[2]}"
    if link.startswith("/monitors/"):
        return f"Monitor #{parts[2]}"
    if link.startswith("/projects/"):
        return "Project issues"
    return "Source" if not link.startswith("/") else "Alerts"
