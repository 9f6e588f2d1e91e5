"""Finding the DSN public key of a Sentry request: X-Sentry-Auth header, query string or envelope `dsn`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_KEY = re.compile(r"^[0-9a-fA-F]{32}$")


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_auth_header(value: str) -> dict[str, str]:
    """Parse `Sentry sentry_key=abc, sentry_version=7` into a dict.

    >>> parse_auth_header("Sentry sentry_key=abc, sentry_version=7")["sentry_key"]
    'abc'
    """
    value = value.strip()
    if value[:7].lower() == "sentry ":
        value = value[7:]
    pairs: dict[str, str] = {}
    for part in value.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            pairs[name.strip()] = val.strip()
    return pairs


def key_from_dsn(dsn: str) -> str | None:
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


def find_public_key(header: str | None, query_key: str | None, envelope_dsn: str | None) -> str:
    """The one public key the request names; several that disagree are refused."""
    candidates = []
    if header:
        header_key = parse_auth_header(header).get("sentry_key")
        if header_key:
            candidates.append(header_key)
    if query_key:
        candidates.append(query_key)
    if envelope_dsn:
        dsn_key = key_from_dsn(envelope_dsn)
        if dsn_key:
            candidates.append(dsn_key)
    if not candidates:
        raise AuthError(401, "missing authorization information: no sentry_key in X-Sentry-Auth, query or dsn")
    if len({c.lower() for c in candidates}) > 1:
        raise AuthError(400, "multiple authorization payloads requested: the request names different keys")
    key = candidates[0]
    if not _KEY.match(key):
        raise AuthError(403, "invalid sentry_key: not a valid public key")
    return key.lower()
