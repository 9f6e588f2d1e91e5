"""Users and their passwords (argon2id via argon2-cffi)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, func, insert, select, update

from watchkeeper.auth.tables import users

ROLES = ("admin", "member", "viewer")
_hasher = PasswordHasher()


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message names the field and says why."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    is_active: bool


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; constant-time and never raises on a bad hash.

    >>> verify_password(hash_password("s3cret"), "s3cret")
    True
    """
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email or len(email) > 254:
        raise UserError(f"email: not a valid e-mail address: {email!r}")
    return email


def create_user(conn: Connection, email: str, password: str, *, role: str = "member", now: float) -> User:
    if role not in ROLES:
        raise UserError(f"role: must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < 8:
        raise UserError("password: must be at least 8 characters")
    email = _normalise_email(email)
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise UserError(f"email: a user with e-mail {email} already exists")
    user_id = conn.execute(
        insert(users).values(email=email, password_hash=hash_password(password), role=role, created_at=now)
    ).inserted_primary_key[0]  # type: ignore[index]
    return User(user_id, email, role, True)


def set_password(conn: Connection, user_id: int, password: str) -> None:
    if len(password) < 8:
        raise UserError("password: must be at least 8 characters")
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=hash_password(password)))


def get_user(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return User(row.id, row.email, row.role, row.is_active) if row else None


def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def list_users(conn: Connection) -> list[User]:
    rows = conn.execute(select(users).order_by(users.c.id))
    return [User(r.id, r.email, r.role, r.is_active) for r in rows]


def find_user(conn: Connection, email: str) -> User | None:
    row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    return User(row.id, row.email, row.role, row.is_active) if row else None


def user_timezone(conn: Connection, user_id: int) -> str | None:
    value: str | None = conn.execute(select(users.c.timezone).where(users.c.id == user_id)).scalar_one_or_none()
    return value


def _active_admins(conn: Connection) -> int:
    query = select(func.count()).select_from(users).where(users.c.role == "admin", users.c.is_active.is_(True))
    return int(conn.execute(query).scalar_one())


def change_user(
    conn: Connection, user_id: int, *, role: str | None = None, is_active: bool | None = None,
    timezone: str | None = None, clear_timezone: bool = False,
) -> User | None:
    """Change role, active flag or time zone; refuses to leave the server without an active admin."""
    user = get_user(conn, user_id)
    if user is None:
        return None
    if role is not None and role not in ROLES:
        raise UserError(f"role: must be one of {', '.join(ROLES)}, not {role!r}")
    losing_admin = user.role == "admin" and user.is_active and (
        (role is not None and role != "admin") or is_active is False
    )
    if losing_admin and _active_admins(conn) <= 1:
        raise UserError("role: this is the last active admin; make another admin first")
    values: dict[str, object] = {}
    if role is not None:
        values["role"] = role
    if is_active is not None:
        values["is_active"] = is_active
    if timezone is not None or clear_timezone:
        values["timezone"] = timezone
    if values:
        conn.execute(update(users).where(users.c.id == user_id).values(**values))
    return get_user(conn, user_id)
