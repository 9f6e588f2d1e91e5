"""API tokens: `wk_` + 40 random characters, shown once, stored as a SHA-256 hash.

A token carries the role of the user who made it; `read_only` narrows it to reading and `project_ids`
to some projects.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, insert, select, update

from watchkeeper.auth.tables import api_tokens, users

TOKEN_PREFIX = "wk_"


@dataclass(frozen=True, slots=True)
class TokenOwner:
    token_id: int
    user_id: int
    email: str
    role: str
    read_only: bool
    last_used_at: float | None = None
    # None = every project the owner can see.
    project_scope: frozenset[int] | None = None

    @property
    def can_write(self) -> bool:
        return not self.read_only and self.role in ("admin", "member")


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    name: str
    token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenSummary:
    id: int
    name: str
    prefix: str
    read_only: bool
    project_ids: list[int] | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


def _scope(text: str | None) -> list[int] | None:
    return None if text is None else sorted(int(i) for i in orjson.loads(text))


def create_token(
    conn: Connection, user_id: int, name: str, *, read_only: bool = False, now: float,
    project_ids: list[int] | None = None,
) -> NewToken:
    """Make a token for a user; the plain token is only in the return value.

    >>> # create_token(conn, 1, "ci", now=clock.now()).token.startswith("wk_")
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("name: must be 1-200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token_id = conn.execute(
        insert(api_tokens).values(
            user_id=user_id, name=name, token_hash=_digest(token), prefix=token[:8],
            read_only=read_only, created_at=now,
            project_scope=None if project_ids is None else orjson.dumps(sorted(set(project_ids))).decode(),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return NewToken(token_id, name, token)


def authenticate_token(conn: Connection, token: str) -> TokenOwner | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = conn.execute(
        select(
            api_tokens.c.id, api_tokens.c.user_id, api_tokens.c.read_only, api_tokens.c.last_used_at,
            api_tokens.c.project_scope, users.c.email, users.c.role,
        )
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(
            api_tokens.c.token_hash == _digest(token),
            api_tokens.c.revoked_at.is_(None),
            users.c.is_active.is_(True),
        )
    ).first()
    if row is None:
        return None
    scope = _scope(row.project_scope)
    return TokenOwner(
        row.id, row.user_id, row.email, row.role, row.read_only, row.last_used_at,
        None if scope is None else frozenset(scope),
    )


def list_tokens(conn: Connection, user_id: int) -> list[TokenSummary]:
    """A user's tokens, revoked ones included (they show when they stopped working)."""
    rows = conn.execute(select(api_tokens).where(api_tokens.c.user_id == user_id).order_by(api_tokens.c.id))
    return [
        TokenSummary(
            r.id, r.name, r.prefix, r.read_only, _scope(r.project_scope), r.created_at, r.last_used_at, r.revoked_at
        )
        for r in rows
    ]


def revoke_token(conn: Connection, token_id: int, *, user_id: int, now: float) -> bool:
    """Revoke one of the user's own tokens; False when it is not theirs or already revoked."""
    return (
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        > 0
    )


def revoke_user_tokens(conn: Connection, user_id: int, *, now: float) -> int:
    """Revoke every live token of a user: on deactivation and on a password reset by an admin, when whoever
    held the account (or its tokens) must lose it. Returns how many were revoked.

    >>> # revoke_user_tokens(conn, 7, now=clock.now())
    """
    return int(
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
    )


# Recording every use would turn each API read into a write; once a minute is precise enough to spot
# unused tokens.
TOUCH_INTERVAL = 60.0


def touch_token(conn: Connection, token_id: int, now: float) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now))
