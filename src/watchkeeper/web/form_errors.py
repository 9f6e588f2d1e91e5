"""Form errors in human words. Every form shows its errors at their fields, keeps the input, and says
what to type — never a schema's regular expression or an internal field name (`starts_at`)."""

from __future__ import annotations

import re
from typing import Any

# A schema's pattern → what to type instead (the patterns of uptime.specs, alerting.rules, oncall, …).
PATTERN_WORDS = {
    r"^[a-z0-9][a-z0-9_\-]*$": "use lower-case letters, digits, - and _, starting with a letter or digit",
    r"^[a-zA-Z_][a-zA-Z0-9_]*$": "use letters, digits and _, not starting with a digit (like service_name)",
    r"^([01]\d|2[0-3]):[0-5]\d$": "a time of day like 09:00",
    r"^https?://": "an address starting with https:// or http://",
    r"^[A-Za-z0-9_.:\-\[\]]+$": "a host name or IP address, like db.example.com or 10.0.0.5",
    r"^[A-Za-z0-9]+$": "letters and digits only",
}

# Internal field names that messages of the shared validators mention, in the words of the forms.
FIELD_WORDS = {
    "starts_at": "the start", "ends_at": "the end", "startsAt": "the start", "endsAt": "the end",
    "duration_seconds": "a duration", "interval_seconds": "the interval", "timeout_seconds": "the timeout",
    "team_id": "team", "monitor_ids": "monitors", "time_zone": "time zone",
}
_FIELD_NAMES = re.compile(r"\b(" + "|".join(map(re.escape, FIELD_WORDS)) + r")\b")


def plain_words(message: str) -> str:
    """A validator's message with internal names in words.

    >>> plain_words("must be after starts_at")
    'must be after the start'
    """
    return _FIELD_NAMES.sub(lambda m: FIELD_WORDS[m.group(1)], message.removeprefix("Value error, "))


def human_message(error: Any) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as a form shows it.

    >>> human_message({"type": "string_pattern_mismatch", "msg": "String should match pattern '^https?://'",
    ...                "ctx": {"pattern": "^https?://"}})
    'an address starting with https:// or http://'
    """
    kind, context = error.get("type", ""), error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        return PATTERN_WORDS.get(str(context.get("pattern")), "has characters that are not allowed here")
    if kind == "string_too_short" and context.get("min_length") == 1:
        return "cannot be empty"
    if kind == "missing":
        return "required"
    if kind in ("int_parsing", "int_from_float", "float_parsing"):
        return "a number" if kind == "float_parsing" else "a whole number"
    return plain_words(str(error.get("msg", "not valid")))
