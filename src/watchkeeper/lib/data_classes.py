"""What a domain stores, how long it keeps it, and how it finds one person in it (GDPR).

Each domain declares its data classes and its person hooks in `<domain>/privacy.py`; the platform's
list of those modules is `watchkeeper/privacy.py`. The types live here, in `lib`, so a domain can
declare them without importing the platform.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection

if TYPE_CHECKING:
    from watchkeeper.config import Settings


@dataclass(frozen=True)
class Expiry:
    """One call of a data class's `expire`: delete at most about `batch_size` rows per table of what
    is older than `days` before `now`; `settings` for classes kept by settings of their own."""

    now: float
    days: float
    batch_size: int
    settings: Settings


# expire(conn, run) -> rows deleted in this call; the retention job calls it again until it returns 0.
Expire = Callable[[Connection, Expiry], int]


@dataclass(frozen=True)
class DataClass:
    """One kind of stored data.

    `setting` names its retention in days under `retention.` (None: kept until its owner deletes it,
    like a monitor or an alert rule, or expired by settings of its own, like sessions: `kept` says which).
    `expire` deletes one bounded batch past the retention.
    """

    domain: str
    name: str
    holds: str
    setting: str | None = None
    expire: Expire | None = None
    kept: str = ""


@dataclass(frozen=True)
class Person:
    """Whom `watchkeeper gdpr export|erase` looks for: any of an id, an e-mail, an IP address.

    >>> Person.of(email=" Jane@Example.com ").email
    'jane@example.com'
    """

    user_id: str | None = None
    email: str | None = None
    ip: str | None = None
    # The Watchkeeper accounts (users.id) this person has: found by the accounts domain from the id or
    # the e-mail, so other domains (on-call, silences) need not read the accounts' tables.
    accounts: tuple[int, ...] = ()

    @classmethod
    def of(cls, *, user_id: str | int | None = None, email: str | None = None, ip: str | None = None) -> Person:
        user_id = str(user_id).strip() or None if user_id is not None else None
        if user_id is None and not (email or "").strip() and not (ip or "").strip():
            raise ValueError("give --user-id, --email or --ip")
        if ip and ip.strip():
            try:
                ip = str(ipaddress.ip_address(ip.strip()))
            except ValueError:
                raise ValueError(f"--ip: {ip[:64]!r} is not an IP address") from None
        else:
            ip = None
        return cls(user_id, email.strip().lower() if email and email.strip() else None, ip or None)

    def _needles(self) -> list[str]:
        return [n for n in (self.email, self.ip) if n]

    def mentioned_in(self, text: str | None) -> bool:
        """Whether free text (a ping's log, an incident update) names the e-mail or the IP address.

        >>> Person(email="jane@example.com").mentioned_in("mail JANE@example.com failed")
        True
        """
        lowered = (text or "").lower()
        return any(needle in lowered for needle in self._needles())

    def redact(self, text: str) -> str:
        """`text` with the e-mail and the IP address replaced by "[erased]"."""
        for needle in self._needles():
            text = re.sub(re.escape(needle), "[erased]", text, flags=re.IGNORECASE)
        return text

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in (("user_id", self.user_id), ("email", self.email), ("ip", self.ip)) if v}


class PersonHooks(Protocol):
    """A domain's `privacy` module."""

    DATA_CLASSES: tuple[DataClass, ...]

    def export_person(self, conn: Connection, person: Person) -> dict[str, list[dict[str, Any]]]:
        """Everything stored about `person`, by data class name (classes with nothing are left out)."""
        ...

    def erase_person(self, conn: Connection, person: Person, now: float) -> dict[str, int]:
        """Delete or anonymise what `export_person` finds; rows changed by data class name."""
        ...
