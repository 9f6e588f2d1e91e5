"""Reading an envelope item by item and admitting each against its quota before its payload is read.

A refused item is passed over in the decoded stream, never held: an envelope of nine 19 MiB
attachments over the attachment quota costs the memory of a decoding step, not of 171 MiB. Items
whose payload nothing reads (types we skip) are passed over the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.errors.envelope import EnvelopeItem, EnvelopeReader
from watchkeeper.errors.rate_limits import item_category, item_quantity


@dataclass(slots=True)
class AdmittedEnvelope:
    headers: dict[str, Any]
    items: list[EnvelopeItem]
    # Quantity taken per category (attachments in bytes), and items refused per item type.
    usage: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    refused_categories: list[str] = field(default_factory=list)

    @property
    def nothing_admitted(self) -> bool:
        """True when items were refused and none that a quota applies to was admitted: a 429."""
        return bool(self.refused) and not any(item_category(item.type) for item in self.items)


def admit_items(
    reader: EnvelopeReader,
    admit: Callable[[str, int], bool],
    read_types: Collection[str],
    check_header: Callable[[dict[str, Any]], None] | None = None,
) -> AdmittedEnvelope:
    """Read the envelope from ``reader``, asking ``admit(category, quantity)`` for each item with a
    quota category before its payload is read. Payloads of item types not in ``read_types`` (which
    nothing reads) are passed over too; their items are kept, empty, to be counted.

    Attachments go with their event, as in Sentry: once the error event is refused, the envelope's
    attachments are dropped too (an attachment is only read alongside the event it belongs to).
    """
    headers = reader.header()
    if check_header is not None:
        check_header(headers)
    admitted = AdmittedEnvelope(headers, [])
    event_refused = False
    while (item_headers := reader.next_item()) is not None:
        kind: str = item_headers["type"]
        category = item_category(kind)
        payload: bytes | None = None
        if category is not None:
            if category == "attachment" and event_refused:
                refuse = True
            else:
                size = item_headers.get("length")
                if size is None and category == "attachment":
                    payload = reader.payload()  # its size is only known once read
                    size = len(payload)
                quantity = item_quantity(category, size or 0)
                refuse = not admit(category, quantity)
                if not refuse:
                    admitted.usage[category] = admitted.usage.get(category, 0) + quantity
            if refuse:
                if payload is None:
                    reader.skip()
                # An attachment dropped with its event is not over a quota of its own.
                _refused(admitted, kind, None if event_refused and category == "attachment" else category)
                if kind == "event" and not event_refused:
                    event_refused = True
                    _drop_attachments(admitted)
                continue
        if kind not in read_types:
            reader.skip()
            payload = b""
        elif payload is None:
            payload = reader.payload()
        admitted.items.append(EnvelopeItem(kind, item_headers, payload))
    return admitted


def _refused(admitted: AdmittedEnvelope, kind: str, category: str | None) -> None:
    admitted.refused[kind] = admitted.refused.get(kind, 0) + 1
    if category is not None and category not in admitted.refused_categories:
        admitted.refused_categories.append(category)


def _drop_attachments(admitted: AdmittedEnvelope) -> None:
    kept = [item for item in admitted.items if item.type != "attachment"]
    for item in admitted.items:
        if item.type == "attachment":
            admitted.refused["attachment"] = admitted.refused.get("attachment", 0) + 1
            admitted.usage["attachment"] -= item_quantity("attachment", len(item.payload))
    admitted.items = kept


def budget_admission(budget: dict[str, int]) -> Callable[[str, int], bool]:
    """``admit`` for a process that cannot reach the quota counters: takes from ``budget`` (what each
    limited category had left when the request came in); categories not in it are unlimited.

    >>> admit = budget_admission({"attachment": 10})
    >>> admit("attachment", 8), admit("attachment", 8), admit("transaction", 1)
    (True, False, True)
    """

    def admit(category: str, quantity: int) -> bool:
        left = budget.get(category)
        if left is None:
            return True
        if quantity > left:
            return False
        budget[category] = left - quantity
        return True

    return admit
