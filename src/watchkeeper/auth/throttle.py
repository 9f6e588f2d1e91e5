"""Failed-login counters: lock an account after repeated failures, and slow one address trying many.

State lives in the `login_throttle` table so it survives restarts and is shared by several web processes.
A key is `email:<address>` or `ip:<address>`; failures count over a window of `lockout_seconds`, and
reaching the limit locks the key for `lockout_seconds` from that failure.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from watchkeeper.auth.tables import login_throttle
from watchkeeper.config import SessionSettings


def account_key(email: str) -> str:
    return "email:" + email.strip().lower()[:254]


def address_key(ip: str) -> str:
    return "ip:" + ip[:45]


def locked_until(conn: Connection, keys: list[str], now: float) -> float | None:
    """The latest time any of `keys` is locked until, or None when none is locked now.

    >>> # locked_until(conn, [account_key("a@b.c"), address_key("10.0.0.1")], clock.now())
    """
    rows = conn.execute(select(login_throttle.c.locked_until).where(login_throttle.c.key.in_(keys)))
    until = [r.locked_until for r in rows if r.locked_until is not None and r.locked_until > now]
    return max(until) if until else None


def record_failure(conn: Connection, key: str, limit: int, now: float, limits: SessionSettings) -> float | None:
    """Count one failure for `key`; returns the lock's end when this failure reached the limit."""
    row = conn.execute(select(login_throttle).where(login_throttle.c.key == key)).first()
    window = limits.lockout_seconds
    if row is None:
        conn.execute(insert(login_throttle).values(key=key, failures=1, window_start=now, locked_until=None))
        failures = 1
    elif now - row.window_start >= window and not (row.locked_until and row.locked_until > now):
        conn.execute(
            update(login_throttle)
            .where(login_throttle.c.key == key)
            .values(failures=1, window_start=now, locked_until=None)
        )
        failures = 1
    else:
        failures = row.failures + 1
        conn.execute(update(login_throttle).where(login_throttle.c.key == key).values(failures=failures))
    if failures < limit:
        return None
    until = now + window
    conn.execute(
        update(login_throttle)
        .where(login_throttle.c.key == key)
        .values(locked_until=until, failures=0, window_start=now)
    )
    return until


def clear(conn: Connection, key: str) -> None:
    """Forget the failures of `key` (after a successful login, or an admin unlocking an account)."""
    conn.execute(delete(login_throttle).where(login_throttle.c.key == key))


def purge(conn: Connection, now: float, limits: SessionSettings) -> int:
    """Forget counters whose window and lock are both over (they no longer change any answer)."""
    stale = (login_throttle.c.window_start <= now - limits.lockout_seconds) & (
        login_throttle.c.locked_until.is_(None) | (login_throttle.c.locked_until <= now)
    )
    return int(conn.execute(delete(login_throttle).where(stale)).rowcount)
