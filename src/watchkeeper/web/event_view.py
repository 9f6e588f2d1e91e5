"""A stored (normalised, scrubbed) event arranged for the issue page: exceptions newest first with
their frames most recent call first, source context with line numbers, breadcrumbs, request, user,
contexts. Values stay as the event had them; the template prints them as text."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class SourceLine:
    number: int | None
    text: str
    current: bool


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    location: str  # module or filename
    lineno: int | None
    in_app: bool
    source: list[SourceLine]
    variables: list[tuple[str, str]]
    expanded: bool = False  # shown open: the most recent in-app frame (or the top one if none is in-app)


@dataclass(frozen=True, slots=True)
class ExceptionView:
    type: str
    value: str
    module: str
    mechanism: str
    handled: bool | None
    frames: list[Frame]


@dataclass(frozen=True, slots=True)
class EventView:
    event_id: str
    message: str
    exceptions: list[ExceptionView]
    breadcrumbs: list[dict[str, Any]]
    request: list[tuple[str, str]]
    request_headers: list[tuple[str, str]]
    user: list[tuple[str, str]]
    contexts: list[tuple[str, list[tuple[str, str]]]]
    tags: list[tuple[str, str]]
    extra: list[tuple[str, str]]
    sdk: str
    raw_json: str
    data: dict[str, Any] = field(repr=False)


def as_text(value: Any) -> str:
    """A value of an event as readable text: strings as they are, anything else as indented JSON.

    >>> as_text({"a": [1, 2]})
    '{\\n  "a": [\\n    1,\\n    2\\n  ]\\n}'
    """
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return repr(value)


def _pairs(mapping: Any) -> list[tuple[str, str]]:
    if isinstance(mapping, dict):
        return [(str(k), as_text(v)) for k, v in mapping.items()]
    if isinstance(mapping, list):  # [[key, value], ...] as tags and headers are stored
        return [(str(p[0]), as_text(p[1])) for p in mapping if isinstance(p, list | tuple) and len(p) == 2]
    return []


def _source(frame: dict[str, Any]) -> list[SourceLine]:
    if frame.get("context_line") is None:
        return []
    lineno = frame.get("lineno") if isinstance(frame.get("lineno"), int) else None
    pre = [str(x) for x in frame.get("pre_context") or []]
    post = [str(x) for x in frame.get("post_context") or []]

    def number(offset: int) -> int | None:
        return None if lineno is None else lineno + offset

    lines = [SourceLine(number(i - len(pre)), text, False) for i, text in enumerate(pre)]
    lines.append(SourceLine(lineno, str(frame["context_line"]), True))
    lines += [SourceLine(number(i + 1), text, False) for i, text in enumerate(post)]
    return lines


def _frame(frame: dict[str, Any]) -> Frame:
    return Frame(
        function=str(frame.get("function") or "?"),
        location=str(frame.get("module") or frame.get("filename") or frame.get("abs_path") or "?"),
        lineno=frame.get("lineno") if isinstance(frame.get("lineno"), int) else None,
        in_app=frame.get("in_app") is True,
        source=_source(frame),
        variables=_pairs(frame.get("vars")),
    )


def _frames(stacktrace: Any) -> list[Frame]:
    raw = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    frames = [_frame(f) for f in reversed(raw or []) if isinstance(f, dict)]  # most recent call first
    first = next((i for i, f in enumerate(frames) if f.in_app), 0)
    if frames:
        frames[first] = replace(frames[first], expanded=True)
    return frames


def _exceptions(data: dict[str, Any]) -> list[ExceptionView]:
    values = (data.get("exception") or {}).get("values") or []
    out = []
    for exc in reversed(values):  # the SDK lists the cause first; the exception that ended it last
        if not isinstance(exc, dict):
            continue
        mechanism: dict[str, Any] = exc["mechanism"] if isinstance(exc.get("mechanism"), dict) else {}
        out.append(
            ExceptionView(
                type=str(exc.get("type") or "Error"),
                value=str(exc.get("value") or ""),
                module=str(exc.get("module") or ""),
                mechanism=str(mechanism.get("type") or ""),
                handled=mechanism.get("handled") if isinstance(mechanism.get("handled"), bool) else None,
                frames=_frames(exc.get("stacktrace")),
            )
        )
    if not out:  # a message with an attached stack trace carries it on its thread
        for thread in (data.get("threads") or {}).get("values") or []:
            if isinstance(thread, dict) and thread.get("stacktrace"):
                out.append(ExceptionView("Thread", str(thread.get("name") or ""), "", "", None,
                                         _frames(thread["stacktrace"])))
    return out


def _message(data: dict[str, Any]) -> str:
    entry = data.get("logentry")
    if isinstance(entry, dict):
        return str(entry.get("formatted") or entry.get("message") or "")
    message = data.get("message")
    return message if isinstance(message, str) else ""


def _breadcrumbs(data: dict[str, Any]) -> list[dict[str, Any]]:
    values = (data.get("breadcrumbs") or {}).get("values") or []
    return [
        {
            "timestamp": b.get("timestamp") if isinstance(b.get("timestamp"), int | float) else None,
            "category": str(b.get("category") or b.get("type") or ""),
            "level": str(b.get("level") or "info"),
            "message": str(b.get("message") or ""),
            "data": as_text(b["data"]) if b.get("data") else "",
        }
        for b in values
        if isinstance(b, dict)
    ]


def _request(data: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    request = data.get("request")
    if not isinstance(request, dict):
        return [], []
    fields = [(k, as_text(request[k])) for k in ("method", "url", "query_string", "data", "cookies", "env")
              if request.get(k) not in (None, "", {}, [])]
    return fields, _pairs(request.get("headers"))


def _sdk(data: dict[str, Any]) -> str:
    sdk = data.get("sdk")
    return f"{sdk.get('name', '')} {sdk.get('version', '')}".strip() if isinstance(sdk, dict) else ""


def event_view(event: dict[str, Any]) -> EventView:
    """`event` as returned by `errors.issues.get_event` / `list_events(full=True)`."""
    data = event.get("data") or {}
    request_fields, headers = _request(data)
    contexts: dict[str, Any] = data["contexts"] if isinstance(data.get("contexts"), dict) else {}
    return EventView(
        event_id=str(event.get("event_id", "")),
        message=_message(data),
        exceptions=_exceptions(data),
        breadcrumbs=_breadcrumbs(data),
        request=request_fields,
        request_headers=headers,
        user=_pairs(data.get("user")),
        contexts=[(str(name), _pairs(values)) for name, values in contexts.items() if isinstance(values, dict)],
        tags=_pairs(data.get("tags")),
        extra=_pairs(data.get("extra")),
        sdk=_sdk(data),
        raw_json=as_text(data),
        data=data,
    )
