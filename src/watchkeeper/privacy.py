"""Every domain's data classes in one list: the retention job, and GDPR export and erasure of a person.

Each domain declares what it stores in `<domain>/privacy.py` (DATA_CLASSES, export_person,
erase_person); `DOMAINS` below is the one place that lists them (the domain contract will absorb it).
Accounts come last: the other domains find a person's accounts before the accounts are erased.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection

from watchkeeper.alerting import privacy as alerting_privacy
from watchkeeper.auth import privacy as accounts_privacy
from watchkeeper.auth.audit import record
from watchkeeper.config import Settings
from watchkeeper.errors import privacy as errors_privacy
from watchkeeper.lib.data_classes import DataClass, Expire, Expiry, Person, PersonHooks
from watchkeeper.uptime import privacy as uptime_privacy

log = logging.getLogger("watchkeeper.retention")

DOMAINS: tuple[PersonHooks, ...] = (errors_privacy, uptime_privacy, alerting_privacy, accounts_privacy)


def data_classes() -> list[DataClass]:
    return [data_class for domain in DOMAINS for data_class in domain.DATA_CLASSES]


def retention_days(data_class: DataClass, settings: Settings) -> float:
    """The class's `retention.<setting>` in days (0 for classes kept by settings of their own)."""
    return float(getattr(settings.retention, data_class.setting)) if data_class.setting else 0.0


def _one_batch(expire: Expire, run: Expiry) -> Callable[[Connection], int]:
    return lambda conn: expire(conn, run)


async def enforce_retention(write: Callable[[Callable[[Connection], int]], Awaitable[int]], now: float,
                            settings: Settings) -> dict[str, int]:
    """Delete everything past its retention, one class and one bounded batch per transaction (`write`
    runs a function in the writer); returns rows deleted per class.

    >>> # await enforce_retention(lambda fn: writer.run(call_each, fn), clock.now(), settings)
    """
    deleted: dict[str, int] = {}
    for data_class in data_classes():
        expire = data_class.expire
        if expire is None:
            continue
        run = Expiry(now, retention_days(data_class, settings), settings.retention.batch_size, settings)
        while True:
            count = await write(_one_batch(expire, run))
            if count:
                deleted[data_class.name] = deleted.get(data_class.name, 0) + count
            if not count or data_class.setting is None:
                break
    if deleted:
        log.info("retention deleted %s", deleted)
    return deleted


def find_person(conn: Connection, person: Person) -> Person:
    """`person` with the accounts it names."""
    return Person(person.user_id, person.email, person.ip, accounts_privacy.find_accounts(conn, person))


def export_person(conn: Connection, person: Person) -> dict[str, Any]:
    """{"person": …, "found": {domain: {class: [records]}}} for every domain (empty ones included)."""
    person = find_person(conn, person)
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for domain in DOMAINS:
        name = domain.DATA_CLASSES[0].domain
        for class_name, records in domain.export_person(conn, person).items():
            found.setdefault(name, {})[class_name] = records
    return {"person": person.describe(), "found": found}


def erase_person(conn: Connection, person: Person, now: float) -> dict[str, Any]:
    """Erase `person` in every domain and record it in the audit log (without the identifiers, which
    would store again what was erased); returns rows removed or anonymised per domain and class."""
    person = find_person(conn, person)
    erased: dict[str, dict[str, int]] = {}
    for domain in DOMAINS:
        counts = domain.erase_person(conn, person, now)
        if counts:
            erased.setdefault(domain.DATA_CLASSES[0].domain, {}).update(counts)
    record(conn, actor_user_id=None, action="gdpr.erase", target_type="person", target_id=None,
           details={"by": sorted(person.describe()), "erased": erased}, now=now)
    return {"person": person.describe(), "erased": erased}
