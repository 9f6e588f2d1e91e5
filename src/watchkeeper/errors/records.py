"""What the ingest hands the writer: processed, scrubbed, ready-to-store items of one envelope."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")


def pickled_by_fields(cls: type[T]) -> type[T]:
    """Pickle ``cls`` as its class and field values, rebuilt by one positional call.

    Records cross two process boundaries per envelope (processor -> server -> writer), and the jobs
    and results of processing (errors/processing.py) one each way. The default for a slots dataclass
    goes through generated ``__getstate__``/``__setstate__`` functions: this halves the time to
    unpickle one.
    """
    values = attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def __reduce__(self: T) -> tuple[type[T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@pickled_by_fields
@dataclass(slots=True)
class EventRecord:
    project_id: int
    event_id: str
    hash: str
    grouping_config: str
    title: str
    culprit: str
    type: str
    level: str
    platform: str
    timestamp: float
    received: float
    environment: str | None
    release: str | None
    user_key: str | None
    tags: list[tuple[str, str]]
    metadata: dict[str, Any]
    data: bytes


@pickled_by_fields
@dataclass(slots=True)
class TransactionRecord:
    project_id: int
    event_id: str
    trace_id: str | None
    name: str
    op: str | None
    status: str | None
    start_timestamp: float
    timestamp: float
    environment: str | None
    release: str | None
    received: float
    data: bytes


@pickled_by_fields
@dataclass(slots=True)
class ItemRecord:
    """A session, sessions aggregate, client report, check-in or log item, kept for later domains."""

    project_id: int
    type: str
    event_id: str | None
    received: float
    data: bytes


@pickled_by_fields
@dataclass(slots=True)
class AttachmentRecord:
    project_id: int
    event_id: str | None
    filename: str
    content_type: str | None
    attachment_type: str | None
    received: float
    data: bytes


@pickled_by_fields
@dataclass(slots=True)
class EnvelopeRecords:
    """Everything accepted from one request, written in one transaction."""

    project_id: int
    received: float
    events: list[EventRecord] = field(default_factory=list)
    transactions: list[TransactionRecord] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    attachments: list[AttachmentRecord] = field(default_factory=list)
    # (category, outcome) -> count, for the per-minute project counters.
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, category: str, outcome: str, n: int = 1) -> None:
        key = (category, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + n

    @property
    def empty(self) -> bool:
        return not (self.events or self.transactions or self.items or self.attachments or self.outcomes)
