"""The accounts domain's data classes, and what it stores about one person (GDPR).

A Watchkeeper account is found by its id (`--user-id`) or its e-mail; an IP address finds the
sessions opened from it and the login counters kept for it. Erasing an account deletes it with its
sessions, API tokens and team memberships, and anonymises the audit log (entries stay, so the log
still says what happened, without who).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, or_, select, update

from watchkeeper.auth.sessions import purge_expired
from watchkeeper.auth.tables import api_tokens, audit_log, login_throttle, sessions, team_members, teams, users
from watchkeeper.lib.data_classes import DataClass, Expiry, Person


class ErasureRefused(Exception):
    """Erasing would lock everyone out (the last active admin)."""


def expire_audit_log(conn: Connection, run: Expiry) -> int:
    ids = select(audit_log.c.id).where(audit_log.c.at < run.now - run.days * 86400).limit(run.batch_size)
    return int(conn.execute(delete(audit_log).where(audit_log.c.id.in_(ids.scalar_subquery()))).rowcount)


def expire_sessions(conn: Connection, run: Expiry) -> int:
    return purge_expired(conn, now=run.now, limits=run.settings.sessions)


DATA_CLASSES: tuple[DataClass, ...] = (
    DataClass("accounts", "audit_log", "who changed what, and when", "audit_log_days", expire_audit_log),
    DataClass("accounts", "sessions", "logged-in sessions (browser, address) and failed-login counters",
              expire=expire_sessions,
              kept="until they expire: sessions.idle_timeout_seconds, sessions.absolute_lifetime_seconds"),
    DataClass("accounts", "users", "accounts, API tokens and team memberships", kept="until deleted"),
)


def find_accounts(conn: Connection, person: Person) -> tuple[int, ...]:
    """The ids of the accounts `person` names (by id or e-mail)."""
    conditions = []
    if person.user_id is not None and person.user_id.isdigit():
        conditions.append(users.c.id == int(person.user_id))
    if person.email:
        conditions.append(func.lower(users.c.email) == person.email)
    if not conditions:
        return ()
    return tuple(conn.scalars(select(users.c.id).where(or_(*conditions)).order_by(users.c.id)))


def _audit_entries(conn: Connection, person: Person) -> list[Any]:
    ids = [str(i) for i in person.accounts]
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
    return [r for r in rows if (r.actor_user_id in person.accounts)
            or (r.target_type == "user" and r.target_id in ids) or person.mentioned_in(r.details)]


def _sessions(person: Person) -> Any:
    conditions: list[Any] = [sessions.c.user_id.in_(person.accounts)] if person.accounts else []
    if person.ip:
        conditions.append(sessions.c.ip == person.ip)
    return or_(*conditions) if conditions else None


def _throttle_keys(person: Person) -> list[str]:
    return [key for key in (f"email:{person.email}" if person.email else None,
                            f"ip:{person.ip}" if person.ip else None) if key]


def export_person(conn: Connection, person: Person) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    if person.accounts:
        for row in conn.execute(select(users).where(users.c.id.in_(person.accounts))):
            found.setdefault("users", []).append(
                {"id": row.id, "email": row.email, "role": row.role, "is_active": row.is_active,
                 "created_at": row.created_at, "timezone": row.timezone})
        for row in conn.execute(select(api_tokens).where(api_tokens.c.user_id.in_(person.accounts))):
            found.setdefault("api_tokens", []).append(
                {"id": row.id, "user_id": row.user_id, "name": row.name, "prefix": row.prefix,
                 "created_at": row.created_at, "last_used_at": row.last_used_at, "revoked_at": row.revoked_at})
        for row in conn.execute(select(teams.c.name, team_members.c.user_id).join(
                team_members, team_members.c.team_id == teams.c.id).where(team_members.c.user_id.in_(person.accounts))):
            found.setdefault("team_memberships", []).append({"team": row.name, "user_id": row.user_id})
    where = _sessions(person)
    if where is not None:
        for row in conn.execute(select(sessions).where(where)):
            found.setdefault("sessions", []).append(
                {"user_id": row.user_id, "created_at": row.created_at, "last_seen_at": row.last_seen_at,
                 "user_agent": row.user_agent, "ip": row.ip})
    for row in conn.execute(select(login_throttle).where(login_throttle.c.key.in_(_throttle_keys(person)))):
        found.setdefault("login_throttle", []).append({"key": row.key, "failures": row.failures})
    for row in _audit_entries(conn, person):
        found.setdefault("audit_log", []).append(
            {"id": row.id, "at": row.at, "actor_user_id": row.actor_user_id, "action": row.action,
             "target_type": row.target_type, "target_id": row.target_id, "details": orjson.loads(row.details)})
    return found


def erase_person(conn: Connection, person: Person, now: float) -> dict[str, int]:
    counts: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        if n:
            counts[name] = counts.get(name, 0) + n

    if person.accounts:
        admins = set(conn.scalars(select(users.c.id).where(users.c.role == "admin", users.c.is_active)))
        if admins and admins <= set(person.accounts):
            raise ErasureRefused("this would erase the last active admin: make another user admin first")
    for row in _audit_entries(conn, person):
        details = person.redact(row.details)
        if row.target_type == "user" and row.target_id in [str(i) for i in person.accounts]:
            details = "{}"  # the account's own entries: its e-mail, role changes
        count("audit_log", conn.execute(update(audit_log).where(audit_log.c.id == row.id).values(
            actor_user_id=None if row.actor_user_id in person.accounts else row.actor_user_id,
            details=details)).rowcount)
    where = _sessions(person)
    if where is not None:
        count("sessions", conn.execute(delete(sessions).where(where)).rowcount)
    count("login_throttle", conn.execute(delete(login_throttle).where(
        login_throttle.c.key.in_(_throttle_keys(person)))).rowcount)
    if person.accounts:
        ids = list(person.accounts)
        count("api_tokens", conn.execute(delete(api_tokens).where(api_tokens.c.user_id.in_(ids))).rowcount)
        count("team_memberships", conn.execute(delete(team_members).where(team_members.c.user_id.in_(ids))).rowcount)
        count("users", conn.execute(delete(users).where(users.c.id.in_(ids))).rowcount)
    return counts
