"""Scrub PII from an event before anything is stored.

Two kinds of rule apply inside the areas where user data lands (frame variables, request,
breadcrumbs, extra, contexts, tags, log messages):

* by key name: a value under a sensitive key (``password``, ``api_key``, ``Authorization``...)
  becomes ``"[Filtered]"`` whatever its type;
* by value: e-mail addresses, card numbers, crypto wallets, bearer tokens, private keys,
  URL credentials and (when IP scrubbing is on) IP addresses found inside strings are replaced
  in place, keeping the rest of the string (see :mod:`watchkeeper.errors.pii_patterns`).

Each switch applies to every field it names, wherever it sits (user, extra, request headers,
cookies, query and body, breadcrumbs, contexts, tags, messages, exception values, spans):
``scrub_data`` to passwords, secrets, cards and e-mail addresses (``user.email`` included),
``scrub_ip_addresses`` to IP addresses, ``sensitive_fields`` and ``safe_fields`` to the keys they
list, each whether or not the others are on. Exception types and frame locations are left alone:
they drive grouping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from math import isfinite
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson

from watchkeeper.errors.interfaces import _INT_END, _INT_MIN, MAX_ITEMS, MAX_STRING_BYTES, trim, within_bounds
from watchkeeper.errors.interfaces import MAX_DEPTH as TRIM_DEPTH
from watchkeeper.errors.pii_patterns import (
    FILTERED,
    anonymize_forwarded,
    anonymize_ip,
    is_card_number,
    scrub_text,
)

__all__ = ["EventScrubber", "ScrubbingRules", "anonymize_ip", "scrub_event"]

# Normalisation already limits depth; this only bounds the recursion for unnormalised input.
MAX_DEPTH = 50

# Substring match on the lower-cased key (camelCase split with "_" first), like Sentry's
# default denylist. Short or ambiguous words only match between non-letters so that useful
# data survives: "auth" matches auth, x-auth-token, basic_auth, authToken, auth_user,
# authorization, but not author, authority or unauthorized; "ssn" not lessness or classname.
_SENSITIVE_KEY = re.compile(
    r"passw|passphrase|pwd|secret|token|api[_-]?key|credential|private[_-]?key|session|csrf|xsrf"
    r"|cookie|credit[_-]?card|card[_-]?num|cc[_-]?num"
    r"|(?<![a-z])(?:o?auth(?:orization|token|key)?|cvv2?|cvc2?|ssn)(?![a-z])"
)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_IP_HEADERS = frozenset({"x-forwarded-for", "x-real-ip", "cf-connecting-ip", "true-client-ip", "x-client-ip"})
# SDK-provided metadata contexts: no user data, and value patterns on kernel versions or device
# ids could only do harm. Key names are still checked there.
_METADATA_CONTEXTS = frozenset(
    {"runtime", "os", "device", "app", "browser", "gpu", "culture", "cloud_resource"}
)
_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class ScrubbingRules:
    """A project's scrubbing settings.

    >>> ScrubbingRules.from_settings({"sensitive_fields": ["iban"]}).extra_fields
    ('iban',)
    """

    enabled: bool = True
    # More key names to treat as sensitive, matched as case-insensitive substrings.
    extra_fields: tuple[str, ...] = ()
    # Key names never scrubbed by key name, value pattern or IP anonymisation (exact, any case).
    safe_fields: tuple[str, ...] = ()
    scrub_ip_addresses: bool = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> ScrubbingRules:
        """Build rules from a project's JSON settings; raises ValueError naming a bad key.

        >>> ScrubbingRules.from_settings({"scrub_data": False}).enabled
        False
        """
        if settings is None:
            return cls()
        if not isinstance(settings, Mapping):
            raise ValueError("scrubbing settings must be a JSON object")
        return cls(
            enabled=_bool_setting(settings, "scrub_data"),
            extra_fields=_names_setting(settings, "sensitive_fields"),
            safe_fields=_names_setting(settings, "safe_fields"),
            scrub_ip_addresses=_bool_setting(settings, "scrub_ip_addresses"),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rules travel to the processor processes with each job. By their fields: compiled by mypyc
        # (setup.py), a frozen dataclass cannot be unpickled attribute by attribute.
        return (ScrubbingRules, (self.enabled, self.extra_fields, self.safe_fields, self.scrub_ip_addresses))


def scrub_event(event: dict[str, Any], rules: ScrubbingRules) -> dict[str, Any]:
    """Scrub ``event`` in place according to ``rules`` and return it.

    >>> scrub_event({"extra": {"password": "hunter2", "who": "bob@example.com"}}, ScrubbingRules())
    {'extra': {'password': '[Filtered]', 'who': '[email]'}}
    """
    EventScrubber(rules).scrub(event)
    return event


def _bool_setting(settings: Mapping[str, Any], key: str) -> bool:
    value = settings.get(key, True)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _names_setting(settings: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = settings.get(key)
    if value is None:
        return ()
    # A bare string is iterable too; accepting it would turn "iban" into "i", "b", "a", "n".
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key} must be a list of field names")
    names = tuple(name.strip() if isinstance(name, str) else name for name in value)
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"{key} must hold non-empty strings only")
    return names


@lru_cache(maxsize=8192)
def _is_sensitive_key(key: str) -> bool:
    return _SENSITIVE_KEY.search(_CAMEL_HUMP.sub("_", key).lower()) is not None


def _values(container: Any) -> list[Any]:
    """The entries of an interface sent either as ``{"values": [...]}`` or as a bare list."""
    if isinstance(container, dict):
        container = container.get("values")
    return container if isinstance(container, list) else []


def _is_pair(item: Any) -> bool:
    """Headers, query strings and tags may come as lists of ``[name, value]``."""
    return isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)


# _PLAIN is 0, so that "if verdict:" picks out the rare keys.
_PLAIN, _SENSITIVE, _SAFE = 0, 1, 2
_CARD_RANGE_START = 10**12
# No value pattern matches fewer characters ("a@b.io" is the shortest).
_MIN_PATTERN_LENGTH = 6
_MAX_CACHED_KEYS = 4096
_MAX_KEY_CHARS = 256  # trim() rewrites longer keys


class _KeyRules:
    """Classifies key names for one ScrubbingRules, caching verdicts across events."""

    __slots__ = ("bounded_verdicts", "defaults", "extra", "safe", "verdicts")

    def __init__(self, rules: ScrubbingRules) -> None:
        # The built-in sensitive names (password, token...) belong to the scrub_data switch.
        self.defaults = rules.enabled
        # Empty names would match every key as a substring.
        self.extra = tuple(name.lower() for name in rules.extra_fields if name.strip())
        self.safe = frozenset(name.lower() for name in rules.safe_fields)
        # Events repeat the same few hundred keys; a dict lookup is much cheaper than the regex.
        self.verdicts: dict[Any, int] = {}
        # The same verdicts for keys that are also within trim()'s bounds (short ASCII strings):
        # found here, a key needs no bounds check either (see EventScrubber.trim_and_scrub).
        self.bounded_verdicts: dict[str, int] = {}

    def verdict(self, key: Any) -> int:
        found = self.verdicts.get(key)
        if found is None:
            found = self._classify(key)
            if len(self.verdicts) >= _MAX_CACHED_KEYS:
                self.verdicts.clear()
            self.verdicts[key] = found
        return found

    def bounded_verdict(self, key: Any) -> int | None:
        """The verdict on ``key``, or None when trim() would have to rewrite the key."""
        if type(key) is not str or len(key) > _MAX_KEY_CHARS or not key.isascii():
            return None
        found = self.verdict(key)
        if len(self.bounded_verdicts) >= _MAX_CACHED_KEYS:
            self.bounded_verdicts.clear()
        self.bounded_verdicts[key] = found
        return found

    def _classify(self, key: Any) -> int:
        if not isinstance(key, str):
            return _PLAIN
        lowered = key.lower()
        if lowered in self.safe:
            return _SAFE
        if (self.defaults and _is_sensitive_key(key)) or any(name in lowered for name in self.extra):
            return _SENSITIVE
        return _PLAIN


@lru_cache(maxsize=64)
def _key_rules_for(rules: ScrubbingRules) -> _KeyRules:
    return _KeyRules(rules)


class EventScrubber:
    """One event's scrubbing pass.

    >>> scrubber = EventScrubber(ScrubbingRules())
    >>> scrubber.trim_and_scrub({"password": "x", "who": "bob@example.com"})
    {'password': '[Filtered]', 'who': '[email]'}
    """

    __slots__ = ("bounded_verdicts", "enabled", "ips", "keys", "memo", "patterns", "safe", "verdicts")

    def __init__(self, rules: ScrubbingRules) -> None:
        self.keys = _key_rules_for(rules)
        # Value patterns (secrets, e-mails, cards) belong to scrub_data, IPs to their own switch;
        # the walk over free-form data is needed while any switch, or a sensitive field, is on.
        self.patterns = rules.enabled
        self.ips = rules.scrub_ip_addresses
        self.enabled = rules.enabled or rules.scrub_ip_addresses or bool(self.keys.extra)
        self.safe = self.keys.safe
        self.verdicts = self.keys.verdicts
        self.bounded_verdicts = self.keys.bounded_verdicts
        # Frames repeat the same reprs and breadcrumbs the same queries; scrubbing a string
        # costs far more than a lookup. Per event, so no PII outlives the event in memory.
        self.memo: dict[str, str] = {}

    def scrub(self, event: dict[str, Any], *, vars_scrubbed: bool = False) -> None:
        """Scrub ``event`` in place; ``vars_scrubbed`` when normalisation trimmed its frame
        variables and breadcrumb data with :meth:`trim_and_scrub`, which leaves nothing to do there."""
        if self.enabled:
            if not vars_scrubbed:
                self._scrub_frames(event)
            self._scrub_breadcrumbs(event.get("breadcrumbs"), vars_scrubbed)
            self._scrub_log_message(event, "logentry")
            self._scrub_log_message(event, "message")
            self._scrub_tags(event.get("tags"))
            self._scrub_contexts(event.get("contexts"))
            if (extra := event.get("extra")) is not None:
                event["extra"] = self.value(extra, 0)
        if isinstance(request := event.get("request"), dict):
            self._scrub_request(request)
        if isinstance(user := event.get("user"), dict):
            self._scrub_user(user)
        if self.enabled:
            self._scrub_exception_values(event.get("exception"))
            self._scrub_spans(event.get("spans"))

    def _scrub_user(self, user: dict[str, Any]) -> None:
        """Every user field: ``email`` by the e-mail pattern, any field by the key rules."""
        address = user.get("ip_address")
        if self.enabled:
            for key, value in user.items():
                if key == "ip_address":
                    continue
                verdict = self.verdict(key)
                if verdict == _SENSITIVE:
                    user[key] = FILTERED
                elif verdict != _SAFE:
                    user[key] = self.value(value, 0)
        if self.ips and isinstance(address, str) and not self.is_safe("ip_address"):
            user["ip_address"] = anonymize_ip(address)
        elif isinstance(address, str) and self.verdict("ip_address") == _SENSITIVE:
            user["ip_address"] = FILTERED

    def _scrub_exception_values(self, exception: Any) -> None:
        # The value is shown as the title; the type and the frames group the issue.
        for entry in _values(exception):
            if isinstance(entry, dict) and isinstance(value := entry.get("value"), str):
                entry["value"] = self.text(value)

    def _scrub_spans(self, spans: Any) -> None:
        if not isinstance(spans, list):
            return
        for span in spans:
            if not isinstance(span, dict):
                continue
            if isinstance(description := span.get("description"), str):
                span["description"] = self.text(description)
            if isinstance(data := span.get("data"), dict):
                self.mapping(data, 0)

    # -- trimming and scrubbing in one walk ---------------------------------------------------

    def trim_and_scrub(self, data: dict[str, Any]) -> Any:
        """What ``trim(data)`` then scrubbing it as free-form data gives, in one walk.

        Frame variables are most of an event, and nearly always within trim()'s bounds: then the
        walk that checks the bounds scrubs as it goes, in place. Values it replaced before finding
        a bound broken are put back, and the data is trimmed (copied) and scrubbed the usual way.
        """
        if not self.enabled:
            return trim(data)
        replaced: list[tuple[Any, Any, Any]] = []
        if type(data) is dict and self._bounded_mapping(data, 0, replaced):
            return data
        # Indexed backwards: mypyc (setup.py) cannot compile reversed() over this list.
        for i in range(len(replaced) - 1, -1, -1):
            container, key, original = replaced[i]
            container[key] = original
        data = trim(data)
        self.value(data, 0)
        return data

    # _bounded_mapping() and _bounded_sequence() repeat the per-value checks instead of sharing a
    # helper, like mapping() and sequence() below: they run once per frame variable, and a call per
    # value would cost about as much as the checks themselves.

    def _bounded_mapping(self, data: dict[Any, Any], depth: int, replaced: list[tuple[Any, Any, Any]]) -> bool:
        """Scrub ``data`` in place while checking trim()'s bounds; False as soon as one is broken,
        with every replacement made so far in ``replaced`` (container, key, original value)."""
        if depth >= TRIM_DEPTH or len(data) > MAX_ITEMS:
            return False
        verdicts = self.bounded_verdicts
        memo = self.memo
        for key, item in data.items():
            try:  # a subscript is cheaper than .get(), and keys repeat: a miss is rare
                verdict = verdicts[key]
            except KeyError:
                found = self.keys.bounded_verdict(key)
                if found is None:
                    return False
                verdict = found
            if verdict:  # _SENSITIVE or _SAFE: rare, kept out of the loop
                if not self._bounded_special(data, key, item, verdict, depth, replaced):
                    return False
                continue
            kind = type(item)
            if kind is str:
                size = len(item)
                if size > MAX_STRING_BYTES or not item.isascii():
                    return False
                if size >= _MIN_PATTERN_LENGTH:
                    scrubbed = memo.get(item)
                    if scrubbed is None:
                        scrubbed = memo[item] = scrub_text(item, ips=self.ips, patterns=self.patterns)
                    if scrubbed is not item:
                        replaced.append((data, key, item))
                        data[key] = scrubbed
            elif kind is int:
                # One comparison for the usual small number; the bounds and cards only above it.
                if item >= _CARD_RANGE_START or item < _INT_MIN:
                    if not _INT_MIN <= item < _INT_END:
                        return False
                    if self.patterns and is_card_number(item):
                        replaced.append((data, key, item))
                        data[key] = "[creditcard]"
            elif kind is dict:
                if not self._bounded_mapping(item, depth + 1, replaced):
                    return False
            elif kind is list:
                if not self._bounded_sequence(item, depth + 1, replaced):
                    return False
            elif kind is float:
                if not isfinite(item):
                    return False
            elif kind is not bool and item is not None:
                return False
        return True

    def _bounded_special(
        self, data: dict[Any, Any], key: Any, item: Any, verdict: int, depth: int, replaced: list[tuple[Any, Any, Any]]
    ) -> bool:
        """`_bounded_mapping` for a sensitive or safe key."""
        kind = type(item)
        if verdict == _SENSITIVE:
            # Whatever the value, trimmed or not, it is filtered: no need to look inside. But
            # trim() turns NaN and infinities into null, which is left alone.
            if item is not None:
                if kind is float and not isfinite(item):
                    return False
                replaced.append((data, key, item))
                data[key] = FILTERED
            return True
        # Safe: trimmed only.
        if kind is dict or kind is list:
            return within_bounds(item, depth + 1)
        if kind is str:
            return len(item) <= MAX_STRING_BYTES and item.isascii()
        if kind is int:
            return _INT_MIN <= item < _INT_END
        if kind is float:
            return isfinite(item)
        return kind is bool or item is None

    def _bounded_sequence(self, items: list[Any], depth: int, replaced: list[tuple[Any, Any, Any]]) -> bool:
        if depth >= TRIM_DEPTH or len(items) > MAX_ITEMS:
            return False
        memo = self.memo
        for index, item in enumerate(items):
            kind = type(item)
            if kind is str:
                size = len(item)
                if size > MAX_STRING_BYTES or not item.isascii():
                    return False
                if size >= _MIN_PATTERN_LENGTH:
                    scrubbed = memo.get(item)
                    if scrubbed is None:
                        scrubbed = memo[item] = scrub_text(item, ips=self.ips, patterns=self.patterns)
                    if scrubbed is not item:
                        replaced.append((items, index, item))
                        items[index] = scrubbed
            elif kind is int:
                if item >= _CARD_RANGE_START or item < _INT_MIN:
                    if not _INT_MIN <= item < _INT_END:
                        return False
                    if self.patterns and is_card_number(item):
                        replaced.append((items, index, item))
                        items[index] = "[creditcard]"
            elif kind is dict:
                if not self._bounded_mapping(item, depth + 1, replaced):
                    return False
            elif kind is list:
                if not self._bounded_sequence(item, depth + 1, replaced):
                    return False
            elif kind is float:
                if not isfinite(item):
                    return False
            elif kind is not bool and item is not None:
                return False
        return True

    # -- generic walk -------------------------------------------------------------------------

    def verdict(self, key: Any) -> int:
        return self.keys.verdict(key)

    def is_safe(self, key: str) -> bool:
        return self.verdict(key) == _SAFE

    def is_sensitive(self, key: str) -> bool:
        return self.verdict(key) == _SENSITIVE

    def text(self, value: str) -> str:
        if len(value) < _MIN_PATTERN_LENGTH:  # saves hashing the string for the memo
            return value
        scrubbed = self.memo.get(value)
        if scrubbed is None:
            scrubbed = self.memo[value] = scrub_text(value, ips=self.ips, patterns=self.patterns)
        return scrubbed

    def value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            return self.text(value)
        if kind is dict:
            self.mapping(value, depth)
        elif kind is list:
            self.sequence(value, depth)
        elif kind is int and self.patterns and value >= _CARD_RANGE_START and is_card_number(value):
            return "[creditcard]"
        return value

    # mapping() and sequence() are the hot loops of the module: they inline value() and text()
    # because a method call per value costs about as much as the memo lookup itself.

    def mapping(self, data: dict[Any, Any], depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        verdicts = self.verdicts
        memo = self.memo
        ips = self.ips
        patterns = self.patterns
        for key, item in data.items():
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = self.verdict(key)
            if verdict == _SENSITIVE:
                if item is not None:
                    data[key] = FILTERED
                continue
            if verdict == _SAFE:
                continue
            kind = type(item)
            if kind is str:
                if len(item) >= _MIN_PATTERN_LENGTH:
                    scrubbed = memo.get(item)
                    if scrubbed is None:
                        scrubbed = memo[item] = scrub_text(item, ips=ips, patterns=patterns)
                    data[key] = scrubbed
            elif kind is dict:
                self.mapping(item, depth + 1)
            elif kind is list:
                self.sequence(item, depth + 1)
            elif kind is int and patterns and item >= _CARD_RANGE_START and is_card_number(item):
                data[key] = "[creditcard]"

    def sequence(self, items: list[Any], depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        memo = self.memo
        ips = self.ips
        patterns = self.patterns
        for index, item in enumerate(items):
            kind = type(item)
            if kind is str:
                if len(item) >= _MIN_PATTERN_LENGTH:
                    scrubbed = memo.get(item)
                    if scrubbed is None:
                        scrubbed = memo[item] = scrub_text(item, ips=ips, patterns=patterns)
                    items[index] = scrubbed
            elif kind is dict:
                self.mapping(item, depth + 1)
            elif kind is list:
                self.sequence(item, depth + 1)
            elif kind is int and patterns and item >= _CARD_RANGE_START and is_card_number(item):
                items[index] = "[creditcard]"

    def keys_only(self, data: dict[Any, Any], depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        for key, item in data.items():
            verdict = self.verdict(key)
            if verdict == _SENSITIVE and item is not None:
                data[key] = FILTERED
            elif verdict == _PLAIN and isinstance(item, dict):
                self.keys_only(item, depth + 1)

    def pairs(self, pairs: list[Any], *, by_key: bool) -> None:
        # Every event's tags come through here: the verdict cache and text() are used directly.
        verdicts = self.verdicts
        for pair in pairs:
            if not _is_pair(pair) or (value := pair[1]) is None:
                continue
            verdict = verdicts.get(pair[0])
            if verdict is None:
                verdict = self.verdict(pair[0])
            if by_key and verdict == _SENSITIVE:
                pair[1] = FILTERED
            elif verdict != _SAFE:
                pair[1] = self.text(value) if type(value) is str else self.value(value, 1)

    # -- event areas --------------------------------------------------------------------------

    def _scrub_frames(self, event: dict[str, Any]) -> None:
        stacktraces = [event.get("stacktrace")]
        for interface in ("exception", "threads"):
            for entry in _values(event.get(interface)):
                if isinstance(entry, dict):
                    # raw_stacktrace is the pre-symbolication copy some SDKs send alongside.
                    stacktraces += (entry.get("stacktrace"), entry.get("raw_stacktrace"))
        for stacktrace in stacktraces:
            if not isinstance(stacktrace, dict) or not isinstance(frames := stacktrace.get("frames"), list):
                continue
            for frame in frames:
                if isinstance(frame, dict) and isinstance(variables := frame.get("vars"), dict):
                    self.mapping(variables, 0)

    def _scrub_breadcrumbs(self, breadcrumbs: Any, data_scrubbed: bool) -> None:
        memo = self.memo
        for crumb in _values(breadcrumbs):
            if not isinstance(crumb, dict):
                continue
            # text() inlined: an event carries up to a hundred crumbs, nearly all with a message.
            if isinstance(message := crumb.get("message"), str) and len(message) >= _MIN_PATTERN_LENGTH:
                scrubbed = memo.get(message)
                if scrubbed is None:
                    scrubbed = memo[message] = scrub_text(message, ips=self.ips, patterns=self.patterns)
                crumb["message"] = scrubbed
            if not data_scrubbed and (data := crumb.get("data")) is not None:
                crumb["data"] = self.value(data, 0)

    def _scrub_log_message(self, event: dict[str, Any], field: str) -> None:
        entry = event.get(field)
        if isinstance(entry, str):
            event[field] = self.text(entry)
            return
        if not isinstance(entry, dict):
            return
        for text_field in ("formatted", "message"):
            if isinstance(text := entry.get(text_field), str):
                entry[text_field] = self.text(text)
        # Params hold the very values interpolated into "formatted".
        if (params := entry.get("params")) is not None:
            entry["params"] = self.value(params, 0)

    def _scrub_tags(self, tags: Any) -> None:
        if isinstance(tags, dict):
            for key, value in tags.items():
                if isinstance(value, str) and not self.is_safe(str(key)):
                    tags[key] = self.text(value)
        elif isinstance(tags, list):
            self.pairs(tags, by_key=False)

    def _scrub_contexts(self, contexts: Any) -> None:
        if not isinstance(contexts, dict):
            return
        for name, context in contexts.items():
            if not isinstance(context, dict) or self.is_safe(str(name)):
                continue
            kind = context.get("type")
            if name in _METADATA_CONTEXTS or (isinstance(kind, str) and kind in _METADATA_CONTEXTS):
                self.keys_only(context, 0)
            else:
                self.mapping(context, 0)

    def _scrub_request(self, request: dict[str, Any]) -> None:
        headers = request.get("headers")
        if isinstance(headers, dict):
            for name, value in headers.items():
                if isinstance(name, str) and value is not None:
                    headers[name] = self._header(name, value)
        elif isinstance(headers, list):
            for pair in headers:
                if _is_pair(pair) and pair[1] is not None:
                    pair[1] = self._header(pair[0], pair[1])
        env = request.get("env")
        if self.enabled:
            cookies = request.get("cookies")
            if cookies and not self.is_safe("cookies"):
                request["cookies"] = self._cookies(cookies)
            if isinstance(env, dict):
                self.mapping(env, 0)
            if isinstance(url := request.get("url"), str):
                request["url"] = self._url(url)
            if (data := request.get("data")) is not None:
                request["data"] = self._body(data)
            if (query := request.get("query_string")) is not None:
                request["query_string"] = self._query(query)
        if (
            self.ips
            and isinstance(env, dict)
            and isinstance(address := env.get("REMOTE_ADDR"), str)
            and not self.is_safe("REMOTE_ADDR")
        ):
            env["REMOTE_ADDR"] = anonymize_ip(address)

    def _header(self, name: str, value: Any) -> Any:
        lowered = name.lower()
        if lowered in self.safe:
            return value
        if self.ips and isinstance(value, str):
            if lowered in _IP_HEADERS:
                return anonymize_ip(value)
            if lowered == "forwarded":
                return anonymize_forwarded(value)
        if not self.enabled:
            return value
        # verdict() and value() inlined: a request carries a dozen headers or more.
        verdict = self.verdicts.get(name)
        if verdict is None:
            verdict = self.keys.verdict(name)
        if verdict == _SENSITIVE:
            return FILTERED
        return self.text(value) if type(value) is str else self.value(value, 0)

    def _cookies(self, cookies: Any) -> Any:
        """Cookies are secrets to the scrub_data switch: each value is filtered unless its name is a
        safe field. Without that switch their values still meet the others (IPs, sensitive fields)."""
        if isinstance(cookies, dict):
            for name, value in cookies.items():
                if value is not None:
                    cookies[name] = self._cookie(str(name), value)
            return cookies
        if isinstance(cookies, list):
            for pair in cookies:
                if _is_pair(pair) and pair[1] is not None:
                    pair[1] = self._cookie(pair[0], pair[1])
            return cookies
        if not isinstance(cookies, str):
            return FILTERED if self.patterns else self.value(cookies, 0)
        parts = []
        for part in cookies.split(";"):
            name, equals, value = part.partition("=")
            parts.append(f"{name}={self._cookie(name.strip(), value)}" if equals else part)
        return ";".join(parts)

    def _cookie(self, name: str, value: Any) -> Any:
        verdict = self.verdict(name)
        if verdict == _SAFE:
            return value
        if verdict == _SENSITIVE or self.patterns:
            return FILTERED
        return self.text(value) if isinstance(value, str) else self.value(value, 0)

    def _url(self, url: str) -> str:
        # SDKs usually move the query to query_string, but not all of them.
        address, question, query = url.partition("?")
        if question:
            query, hash_sign, fragment = query.partition("#")
            url = f"{address}?{self._urlencoded(query)}{hash_sign}{fragment}"
        return self.text(url)

    def _body(self, data: Any) -> Any:
        if not isinstance(data, str):
            return self.value(data, 0)
        if data.lstrip()[:1] in ("{", "["):
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                return self.text(data)
            if isinstance(parsed, dict | list):
                before = orjson.dumps(parsed)
                after = orjson.dumps(self.value(parsed, 0))
                # Re-serialising would reformat an untouched body for nothing.
                return data if after == before else after.decode()
        if "=" in data and not _WHITESPACE.search(data):
            return self._urlencoded(data)
        return self.text(data)

    def _query(self, query: Any) -> Any:
        if isinstance(query, str):
            return self._urlencoded(query)
        if isinstance(query, list):
            self.pairs(query, by_key=True)
            return query
        return self.value(query, 0)

    def _urlencoded(self, encoded: str) -> str:
        """Scrub ``a=b&c=d`` field by field; fields left alone keep their exact encoding."""
        fields = encoded.split("&")
        changed = False
        for index, field in enumerate(fields):
            raw_name, equals, raw_value = field.partition("=")
            if not equals or not raw_value:
                continue
            name = unquote_plus(raw_name) if "%" in raw_name or "+" in raw_name else raw_name
            verdict = self.verdict(name)
            if verdict == _SAFE:
                continue
            if verdict == _SENSITIVE:
                fields[index] = f"{raw_name}={FILTERED}"
                changed = True
                continue
            value = unquote_plus(raw_value) if "%" in raw_value or "+" in raw_value else raw_value
            scrubbed = self.text(value)
            if scrubbed != value:
                fields[index] = f"{raw_name}={quote_plus(scrubbed, safe='[]:')}"
                changed = True
        return "&".join(fields) if changed else encoded
