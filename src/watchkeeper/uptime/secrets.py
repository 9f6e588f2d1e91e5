"""Secrets inside monitor configs (passwords, tokens, credentials in URLs, auth headers) are write-only
over the API: answers show a mask, and a change that sends the mask back keeps the stored value."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key"}


def _url_with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def masked_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the API shows it.

    >>> masked_config({"url": "postgresql://app:s3cret@db/app"})["url"]
    'postgresql://app:********@db/app'
    """
    shown = copy.deepcopy(config)
    if isinstance(shown.get("url"), str):
        shown["url"] = _url_with_password(shown["url"], MASK)
    if shown.get("bearer_token"):
        shown["bearer_token"] = MASK
    if isinstance(shown.get("basic_auth"), dict):
        shown["basic_auth"]["password"] = MASK
    if isinstance(shown.get("headers"), dict):
        shown["headers"] = {k: MASK if k.lower() in SECRET_HEADERS else v for k, v in shown["headers"].items()}
    return shown


def keep_masked_secrets(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`new` with every masked secret replaced by the stored one from `old`."""
    kept = copy.deepcopy(new)
    if isinstance(kept.get("url"), str) and urlsplit(kept["url"]).password == MASK and isinstance(old.get("url"), str):
        kept["url"] = _url_with_password(kept["url"], urlsplit(old["url"]).password)
    if kept.get("bearer_token") == MASK:
        kept["bearer_token"] = old.get("bearer_token")
    if isinstance(kept.get("basic_auth"), dict) and kept["basic_auth"].get("password") == MASK:
        kept["basic_auth"]["password"] = (old.get("basic_auth") or {}).get("password", "")
    if isinstance(kept.get("headers"), dict):
        old_headers = {k.lower(): v for k, v in (old.get("headers") or {}).items()}
        kept["headers"] = {k: old_headers.get(k.lower(), "") if v == MASK else v for k, v in kept["headers"].items()}
    return kept
