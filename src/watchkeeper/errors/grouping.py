"""Decide which issue a normalised event belongs to, and how the issue is labelled.

Precedence, as in Sentry: the client's fingerprint, then the exceptions' stack frames, then the
exception type and value, then the message. Line numbers never contribute (they move with every
deploy); values never contribute next to frames (they vary between occurrences of one bug).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

GROUPING_CONFIG = "watchkeeper:2026-11"

MAX_CONTEXT_CHARS = 120
MAX_TITLE_CHARS = 100
# Messages past this length are grouped by their start, which keeps parameterize() cheap.
MAX_GROUPED_MESSAGE = 1024
FALLBACK = "<no grouping information>"
_JS_PLATFORMS = frozenset({"javascript", "node"})


@dataclass(frozen=True, slots=True)
class Grouping:
    hash: str
    variant: str  # "fingerprint" | "stacktrace" | "exception" | "message" | "fallback"
    components: list[str]


# --- parameterize -------------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_H16 = r"[0-9a-f]{1,4}"
# Each alternative starts at a boundary its own lookbehind or \b enforces, so a failed attempt
# inside a long word is rejected in O(1) and the whole scan stays linear.
_PARAMETERS = (
    ("url", r"\b[a-z][a-z0-9+.-]{0,31}://[^\s\"'<>]*[^\s\"'<>.,;:!?)\]]"),
    ("email", r"(?<![\w.+-])[\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+"),
    ("uuid", r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    ("ip", rf"(?<![\w.]){_IPV4}\b(?!\.\d)"),
    ("ip", rf"(?<![\w:])(?:{_H16}:){{7}}{_H16}(?![\w:])"),
    (
        "ip",
        rf"(?<![\w:])(?=[0-9a-f:.]{{0,45}}\d)(?:{_H16}(?::{_H16}){{0,6}})?::"
        rf"(?:(?:{_H16}:){{0,5}}{_IPV4}|{_H16}(?::{_H16}){{0,6}})?(?![\w:])",
    ),
    ("date", r"\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?(?!\d)"),
    ("date", r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?!\d)"),
    ("date", r"\b(?:\d{1,2}/\d{1,2}/\d{2,4}|\d{4}/\d{1,2}/\d{1,2})\b"),
    ("date", rf"\b\d{{1,2}}/{_MONTH}/\d{{4}}(?::\d{{2}}:\d{{2}}:\d{{2}})?(?:\s[+-]\d{{4}})?"),
    (
        "date",
        rf"\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+\d{{1,2}}\s+{_MONTH}\s+\d{{4}}"
        r"(?:\s+\d{2}:\d{2}(?::\d{2})?)?(?:\s+(?:[+-]\d{4}|gmt|utc))?\b",
    ),
    ("date", rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"),
    ("date", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+\d{{4}}\b"),
    ("hex", r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"),
    (
        "duration",
        r"(?<![\w.])\d+(?:\.\d+)?\s?"
        r"(?:ns|us|µs|ms|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|days?)\b",
    ),
    ("float", r"(?<![\w.])-?\d+\.\d+\b(?!\.\d)"),
    ("int", r"(?<![\w.])-?\d+\b(?!\.\d)"),
    ("quoted", r"(?<![\w'])'[^'\n]*'(?!\w)|(?<![\w\"])\"[^\"\n]*\"(?!\w)"),
    ("bool", r"\b(?:true|false)\b"),
)
_PARAMETER_NAMES = {f"p{i}": f"<{name}>" for i, (name, _) in enumerate(_PARAMETERS)}
# Every alternative starts after a non-word character; checking that once up front spares the
# alternatives at every position inside a word.
_PARAMETER_RE = re.compile(
    r"(?<!\w)(?:" + "|".join(f"(?P<p{i}>{pattern})" for i, (_, pattern) in enumerate(_PARAMETERS)) + ")",
    re.ASCII | re.IGNORECASE,
)


def _placeholder(match: re.Match[str]) -> str:
    return _PARAMETER_NAMES[match.lastgroup or ""]


def parameterize(text: str) -> str:
    """Replace the variable parts of a message so occurrences of one problem read the same.

    >>> parameterize("Order 1234 failed for bob@example.com after 3.5s")
    'Order <int> failed for <email> after <duration>'
    """
    return _PARAMETER_RE.sub(_placeholder, text)


# --- frames -------------------------------------------------------------------------------------

_ADDRESS = re.compile(r"0x[0-9a-f]+", re.ASCII | re.IGNORECASE)
_MODULE_NOISE = re.compile(
    r"0x[0-9a-f]+"  # memory addresses
    r"|(?<=\$\$Lambda\$)\d+(?:/(?:0x[0-9a-f]+|\d+))?"  # Java lambda class numbering
    r"|(?<=Accessor)\d+"  # Java reflection: GeneratedMethodAccessor123
    r"|\b(?=[0-9a-z]*\d)(?=[0-9a-z]*[a-f])[0-9a-f]{8,}\b",  # content hashes: main.3f2a1b9c.js
    re.ASCII | re.IGNORECASE,
)
_URL_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*", re.ASCII | re.IGNORECASE)


def _frames(container: Any) -> list[dict[str, Any]]:
    if type(container) is dict:
        trace = container.get("stacktrace")
        if type(trace) is dict and type(trace.get("frames")) is list:
            return [f for f in trace["frames"] if type(f) is dict]
    return []


def _text(value: Any) -> str:
    return value if type(value) is str else ""


# Module and file names repeat across events, and the regexes are the costly part of a frame.
@lru_cache(maxsize=4096)
def _clean_module(module: str) -> str:
    return _MODULE_NOISE.sub("", module)


@lru_cache(maxsize=4096)
def _clean_filename(filename: str) -> str:
    path = filename.partition("?")[0].partition("#")[0]
    return _MODULE_NOISE.sub("", _URL_ORIGIN.sub("", path))


def _frame_component(frame: dict[str, Any]) -> str | None:
    # Runs for every frame of every event: _text()'s type check is written out, as the calls cost
    # more than the rest of the work.
    get = frame.get
    module = get("module")
    if type(module) is str and module:
        location = _clean_module(module)
    else:
        location = _clean_filename(_text(get("filename")) or _text(get("abs_path")))
    function = get("function")
    if type(function) is not str:
        function = ""
    elif "0x" in function:
        function = _ADDRESS.sub("", function)
    context_line = get("context_line")
    context = " ".join(context_line.split())[:MAX_CONTEXT_CHARS] if type(context_line) is str else ""
    if context:
        return f"frame: {location} in {function} | {context}"
    if location or function:
        return f"frame: {location} in {function}"
    return None


def _frame_components(frames: list[dict[str, Any]], in_app_only: bool) -> list[str]:
    components: list[str] = []
    for frame in frames:
        if in_app_only and frame.get("in_app") is not True:
            continue
        component = _frame_component(frame)
        # Direct recursion: a stack 50 deep in the same function is the same bug as one 3 deep.
        if component is not None and (not components or components[-1] != component):
            components.append(component)
    return components


def _in_app_flags(frames: list[dict[str, Any]]) -> list[bool]:
    """Frames to treat as the app's: those marked in-app, or all when no frame says either way."""
    if all(frame.get("in_app") is None for frame in frames):
        return [True] * len(frames)
    return [frame.get("in_app") is True for frame in frames]


# --- default grouping -----------------------------------------------------------------------------


def _exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    exception = event.get("exception")
    values = exception.get("values") if type(exception) is dict else None
    return [v for v in values if type(v) is dict] if type(values) is list else []


def _exception_components(values: list[dict[str, Any]]) -> tuple[str, list[str]]:
    frames = [_frames(value) for value in values]
    in_app_only = any(f.get("in_app") is True for stack in frames for f in stack)
    components: list[str] = []
    variant = "exception"
    for value, stack in zip(values, frames, strict=True):
        mechanism = value.get("mechanism")
        synthetic = type(mechanism) is dict and mechanism.get("synthetic") is True
        # A synthetic exception's type is made up by the SDK (e.g. from a signal), not the error.
        kind = "" if synthetic else _text(value.get("type"))
        if kind:
            components.append(f"type: {kind}")
        if stack:
            frame_components = _frame_components(stack, in_app_only)
            if frame_components:
                variant = "stacktrace"
                components.extend(frame_components)
        elif not synthetic and value.get("value"):
            components.append(f"value: {parameterize(str(value['value'])[:MAX_GROUPED_MESSAGE])}")
    return variant, components


def _loose_frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Frames outside exceptions: a message's attached stack trace, or the crashed thread's."""
    frames = _frames(event)
    if frames:
        return frames
    threads = event.get("threads")
    values = threads.get("values") if type(threads) is dict else None
    if type(values) is not list:
        return []
    stacks = [(thread, _frames(thread)) for thread in values if type(thread) is dict]
    stacks = [(thread, stack) for thread, stack in stacks if stack]
    for flag in ("crashed", "current"):
        for thread, stack in stacks:
            if thread.get(flag) is True:
                return stack
    return stacks[0][1] if len(stacks) == 1 else []


def _message_for_grouping(event: dict[str, Any]) -> str:
    logentry = event.get("logentry")
    if type(logentry) is not dict:
        return ""
    # The template, when the SDK sent one, is the message before any variable went in.
    if logentry.get("params") and _text(logentry.get("message")):
        return _text(logentry.get("message"))
    return _text(logentry.get("formatted")) or _text(logentry.get("message"))


def _default_components(event: dict[str, Any]) -> tuple[str, list[str]]:
    values = _exception_values(event)
    if values:
        variant, components = _exception_components(values)
        if components:
            return variant, components
    frames = _loose_frames(event)
    if frames:
        in_app_only = any(frame.get("in_app") is True for frame in frames)
        components = _frame_components(frames, in_app_only)
        if components:
            return "stacktrace", components
    message = _message_for_grouping(event).strip()
    if message:
        return "message", [f"message: {parameterize(message[:MAX_GROUPED_MESSAGE])}"]
    return "fallback", [FALLBACK]


# --- fingerprints ---------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


def _tag(event: dict[str, Any], name: str) -> str | None:
    tags = event.get("tags")
    if type(tags) is list:
        for pair in tags:
            if type(pair) is list and len(pair) == 2 and pair[0] == name:
                return str(pair[1])
    return None


def _variable(event: dict[str, Any], name: str) -> str:
    """Value of a fingerprint variable such as ``{{ transaction }}``; unknown names stay literal."""
    values = _exception_values(event)
    raised = values[-1] if values else {}
    frame = _culprit_frame(event) or {}
    found: str | None
    if name == "transaction":
        found = _text(event.get("transaction"))
    elif name in ("type", "error.type"):
        found = _text(raised.get("type"))
    elif name in ("value", "error.value"):
        found = _text(raised.get("value"))
    elif name in ("function", "module", "package"):
        found = _text(frame.get(name))
    elif name in ("level", "logger", "platform"):
        found = _text(event.get(name))
    elif name == "message":
        found = _message_for_grouping(event)
    elif name.startswith("tags."):
        found = _tag(event, name[5:])
    else:
        return f"{{{{ {name} }}}}"
    return found or f"<no-{name}>"


def compute_grouping(event: dict[str, Any]) -> Grouping:
    """Group a normalised event; equal hashes mean the same issue.

    >>> compute_grouping({"logentry": {"formatted": "Disk 93% full"}}).components
    ['message: Disk <int>% full']
    """
    fingerprint = event.get("fingerprint")
    if type(fingerprint) is list and fingerprint:
        names = [
            match.group(1) if (match := _VARIABLE.fullmatch(str(part))) else None for part in fingerprint
        ]
        if names != ["default"]:
            components: list[str] = []
            for part, name in zip(fingerprint, names, strict=True):
                if name == "default":
                    components.extend(_default_components(event)[1])
                elif name is not None:
                    components.append(f"fingerprint: {_variable(event, name)}")
                else:
                    components.append(f"fingerprint: {part}")
            return _grouping("fingerprint", components)
    return _grouping(*_default_components(event))


def _grouping(variant: str, components: list[str]) -> Grouping:
    digest = hashlib.md5(orjson.dumps(components), usedforsecurity=False).hexdigest()
    return Grouping(hash=digest, variant=variant, components=components)


# --- labels ---------------------------------------------------------------------------------------


def _first_line(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    line = text.strip().split("\n", 1)[0].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _primary_frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The stack of the exception raised (the last one that has frames), else any loose stack."""
    for value in _exception_values(event)[::-1]:  # not reversed(): mypyc (setup.py) cannot compile it here
        frames = _frames(value)
        if frames:
            return frames
    return _loose_frames(event)


def _culprit_frame(event: dict[str, Any]) -> dict[str, Any] | None:
    frames = _primary_frames(event)
    return _newest_app_frame(frames, _in_app_flags(frames)) if frames else None


def _newest_app_frame(frames: list[dict[str, Any]], flags: list[bool]) -> dict[str, Any]:
    for frame, in_app in zip(reversed(frames), reversed(flags), strict=True):
        if in_app:
            return frame
    return frames[-1]


def _is_js(event: dict[str, Any], frame: dict[str, Any]) -> bool:
    return (frame.get("platform") or event.get("platform")) in _JS_PLATFORMS


def event_title(event: dict[str, Any]) -> str:
    """The one-line label of an event's issue.

    >>> event_title({"exception": {"values": [{"type": "KeyError", "value": "'user'"}]}})
    "KeyError: 'user'"
    """
    if event.get("type") == "transaction":
        return _first_line(_text(event.get("transaction")), 200) or "<unlabeled transaction>"
    values = _exception_values(event)
    if values:
        raised = values[-1]
        kind = _text(raised.get("type"))
        value = _first_line(_text(raised.get("value")))
        if kind or value:
            return f"{kind}: {value}" if kind and value else kind or value
    logentry = event.get("logentry")
    if type(logentry) is dict:
        message = _first_line(_text(logentry.get("formatted")) or _text(logentry.get("message")))
        if message:
            return message
    return "<unlabeled event>"


def event_culprit(event: dict[str, Any]) -> str:
    """Where the problem happened: "module in function" of the newest in-app frame.

    >>> event_culprit({"stacktrace": {"frames": [{"module": "shop.views", "function": "checkout"}]}})
    'shop.views in checkout'
    """
    explicit = _text(event.get("culprit"))
    if explicit:
        return explicit
    frame = _culprit_frame(event)
    if frame is not None:
        function = _text(frame.get("function"))
        if _is_js(event, frame):
            where = _text(frame.get("filename")).partition("?")[0] or _text(frame.get("module"))
        else:
            where = _text(frame.get("module")) or _text(frame.get("filename"))
        label = " in ".join(part for part in (where, function) if part)
        if label:
            return label
    return _text(event.get("transaction"))


def event_metadata(event: dict[str, Any]) -> dict[str, Any]:
    """Facts for the issue list, with only the keys this event can answer.

    >>> event_metadata({"exception": {"values": [{"type": "KeyError", "value": "'user'"}]}})
    {'type': 'KeyError', 'value': "'user'"}
    """
    metadata: dict[str, Any] = {}
    values = _exception_values(event)
    if values:
        raised = values[-1]
        for key in ("type", "value"):
            text = _text(raised.get(key))
            if text:
                metadata[key] = text[:1024]
    frames = _primary_frames(event)
    if frames:
        flags = _in_app_flags(frames)
        frame = _newest_app_frame(frames, flags)
        for key in ("filename", "function"):
            text = _text(frame.get(key))
            if text:
                metadata[key] = text
        metadata["in_app_frame_count"] = sum(flags)
    return metadata
