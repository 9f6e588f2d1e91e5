"""The ingest's view of DSN keys: public key → project, limits and scrubbing, cached in memory.

Ingest must not hit the database per request for auth. Entries live `ttl` seconds so a key disabled
in another process stops working within that time; changes made in this process invalidate at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from watchkeeper.auth.projects import find_key
from watchkeeper.lib.clock import Clock


@dataclass(frozen=True, slots=True)
class KeyGrant:
    key_id: int
    project_id: int
    public_key: str
    is_active: bool
    key_per_minute: int | None
    key_per_hour: int | None
    project_per_minute: int | None
    project_per_hour: int | None
    project_settings: dict[str, Any]


class KeyCache:
    def __init__(self, engine: Engine, clock: Clock, ttl: float = 10.0, max_entries: int = 10_000) -> None:
        self._engine = engine
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, KeyGrant | None]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()

    def cached(self, public_key: str) -> tuple[bool, KeyGrant | None]:
        """(True, grant) when the cache holds a fresh answer for the key; never touches the database."""
        entry = self._entries.get(public_key)
        if entry is not None and entry[0] > self._clock.monotonic():
            return True, entry[1]
        return False, None

    def lookup(self, public_key: str) -> KeyGrant | None:
        """The grant for a public key, or None if no such key exists (negative answers are cached too)."""
        now = self._clock.monotonic()
        entry = self._entries.get(public_key)
        if entry is not None and entry[0] > now:
            return entry[1]
        with self._engine.connect() as conn:
            found = find_key(conn, public_key)
        grant = None
        if found is not None:
            key, project = found
            grant = KeyGrant(
                key.id,
                project.id,
                key.public_key,
                key.is_active,
                key.events_per_minute,
                key.events_per_hour,
                project.events_per_minute,
                project.events_per_hour,
                project.settings,
            )
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()  # unknown keys from a scanner must not grow memory without bound
            self._entries[public_key] = (now + self._ttl, grant)
        return grant
