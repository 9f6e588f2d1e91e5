"""Secrets inside monitor configs, and the one rule that hides them wherever a config is shown (the API,
the monitor list and page, the edit form).

A secret is: the password of a URL (`https://user:PASSWORD@host`, `postgresql://app:PASSWORD@db/app`),
a URL query parameter or header whose name says credential (`api_key`, `token`, `password`,
`sslpassword`, `Authorization`, `X-Auth-Token`, `Cookie`, …), the bearer token, the basic-auth password
and the request body (which often carries a login). Everyone sees the mask; only an editor may read
the stored values (`POST /api/v1/monitors/<id>/reveal`), and a change that sends the mask back keeps
the stored value.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "********"
# Parts of a header or query-parameter name that mark its value as a credential.
SECRET_NAME_PARTS = ("auth", "token", "key", "secret", "pass", "pwd", "cookie", "session", "signature",
                     "credential", "private")


def is_secret_name(name: str) -> bool:
    """Whether a header or query parameter called `name` carries a credential.

    >>> is_secret_name("X-Auth-Token"), is_secret_name("sslpassword"), is_secret_name("Accept")
    (True, True, False)
    """
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def _is_mask(value: str) -> bool:
    return unquote_plus(value) == MASK


def _netloc(parts: Any, password: str | None) -> str:
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return f"{user}:{password}@{parts.netloc.rpartition('@')[2]}"


def _query_pairs(query: str) -> list[tuple[str, str, str]]:
    """(name, '=' or '', raw value) of each part of a query string, as written."""
    return [part.partition("=") for part in query.split("&")] if query else []


def masked_url(url: str) -> str:
    """The URL with its password and credential query parameters masked.

    >>> masked_url("postgresql://app:s3cret@db/app?sslmode=require&sslpassword=k3y")
    'postgresql://app:********@db/app?sslmode=require&sslpassword=********'
    """
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=_netloc(parts, MASK))
    query = "&".join(name + sep + (MASK if sep and value and is_secret_name(unquote_plus(name)) else value)
                     for name, sep, value in _query_pairs(parts.query))
    return urlunsplit(parts._replace(query=query))


def kept_url(url: str, old: str) -> str:
    """`url` with each masked part (password, query parameter) replaced by the stored one from `old`."""
    parts, old_parts = urlsplit(url), urlsplit(old)
    if parts.password is not None and _is_mask(parts.password) and old_parts.password is not None:
        parts = parts._replace(netloc=_netloc(parts, old_parts.netloc.rpartition("@")[0].partition(":")[2]))
    stored: dict[str, list[str]] = {}
    for name, _sep, value in _query_pairs(old_parts.query):
        stored.setdefault(unquote_plus(name), []).append(value)
    pairs = []
    for name, sep, value in _query_pairs(parts.query):
        left = stored.get(unquote_plus(name))
        if sep and _is_mask(value) and left:
            value = left.pop(0)
        pairs.append(name + sep + value)
    return urlunsplit(parts._replace(query="&".join(pairs)))


def masked_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as anyone but an editor revealing it sees it: every secret replaced by the mask.

    >>> masked_config({"url": "https://shop.example.com/health?api_key=abc", "headers": {"X-Auth-Token": "t"}})
    {'url': 'https://shop.example.com/health?api_key=********', 'headers': {'X-Auth-Token': '********'}}
    """
    shown = copy.deepcopy(config)
    if isinstance(shown.get("url"), str):
        shown["url"] = masked_url(shown["url"])
    if shown.get("bearer_token"):
        shown["bearer_token"] = MASK
    if shown.get("body"):
        shown["body"] = MASK
    if isinstance(shown.get("basic_auth"), dict) and shown["basic_auth"].get("password"):
        shown["basic_auth"]["password"] = MASK
    if isinstance(shown.get("headers"), dict):
        shown["headers"] = {k: MASK if is_secret_name(k) and v else v for k, v in shown["headers"].items()}
    return shown


def keep_masked_secrets(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`new` with every masked secret replaced by the stored one from `old` (an edit that sends the
    mask back unchanged keeps the secret; anything else replaces it)."""
    kept = copy.deepcopy(new)
    if isinstance(kept.get("url"), str) and isinstance(old.get("url"), str):
        kept["url"] = kept_url(kept["url"], old["url"])
    if kept.get("bearer_token") == MASK:
        kept["bearer_token"] = old.get("bearer_token")
    if kept.get("body") == MASK:
        kept["body"] = old.get("body")
    if isinstance(kept.get("basic_auth"), dict) and kept["basic_auth"].get("password") == MASK:
        kept["basic_auth"]["password"] = (old.get("basic_auth") or {}).get("password", "")
    if isinstance(kept.get("headers"), dict):
        old_headers = {k.lower(): v for k, v in (old.get("headers") or {}).items()}
        kept["headers"] = {k: old_headers.get(k.lower(), "") if v == MASK else v for k, v in kept["headers"].items()}
    return kept
