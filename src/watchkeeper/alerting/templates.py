"""Annotation templates (summary, description, runbook URL) in a sandboxed Jinja2 environment.

Rule authors are users of the server, not its operators: the sandbox keeps a template from reaching
Python internals (`{{ ''.__class__ }}` is refused), and rendering errors become the annotation text
instead of failing the evaluation round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

MAX_RENDERED_CHARS = 4000
_environment = SandboxedEnvironment(autoescape=False, trim_blocks=True)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """The compiled template; raises ValueError naming the syntax error (checked when a rule is saved)."""
    try:
        return _environment.from_string(source)
    except TemplateError as exc:
        raise ValueError(f"template error: {exc}") from None


# `{{ name }}` and `{{ name.key.key }}`, nothing else: what most annotations are made of.
_PLAIN_NAME = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*\}\}")
# Jinja reads these as literals, not as names of the context.
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None"})
_SCALARS = (str, int, float, bool, type(None))
_NOT_PLAIN = object()


@lru_cache(maxsize=4096)
def _plain_parts(source: str) -> tuple[str | tuple[str, ...], ...] | None:
    """A template made only of text and `{{ dotted.names }}` as its parts (text, then name paths), or None.
    Keys that are also attributes of dict (`items`, `keys`, ...) are left to Jinja, which reads the
    attribute; so are newlines (Jinja drops a trailing one)."""
    if "\n" in source or "\r" in source:
        return None
    parts: list[str | tuple[str, ...]] = []
    position = 0
    for match in _PLAIN_NAME.finditer(source):
        text = source[position:match.start()]
        path = tuple(match[1].split("."))
        if "{" in text or "}" in text or path[0] in _LITERALS or any(hasattr(dict, key) for key in path[1:]):
            return None
        parts += [text, path]
        position = match.end()
    tail = source[position:]
    if "{" in tail or "}" in tail:
        return None
    return (*parts, tail)


def _plain_value(path: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    """What Jinja's sandbox prints for `{{ a.b.c }}` when each step is a dict (a missing last key prints
    nothing); _NOT_PLAIN for anything else (Jinja then renders it, errors included)."""
    if path[0] not in context:
        return _NOT_PLAIN  # a global of Jinja's, or undefined
    value = context[path[0]]
    for depth, key in enumerate(path[1:], 2):
        if type(value) is not dict:
            return _NOT_PLAIN
        if key not in value:
            return "" if depth == len(path) else _NOT_PLAIN
        value = value[key]
    return value if type(value) in _SCALARS else _NOT_PLAIN


def _render_plain(parts: tuple[str | tuple[str, ...], ...], context: Mapping[str, Any]) -> str | None:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _plain_value(part, context)
        if value is _NOT_PLAIN:
            return None
        out.append(str(value))
    return "".join(out)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render an annotation.

    >>> render("{{ labels.project }}: {{ value }} errors/min", {"labels": {"project": "shop"}, "value": 12})
    'shop: 12 errors/min'

    A template of plain `{{ names }}` is filled in directly, with what Jinja would print: an alert storm
    renders one per new alert, and the sandbox's checks on each lookup were most of that cost.
    """
    if "{" not in source:
        return source
    parts = _plain_parts(source)
    if parts is not None:
        plain = _render_plain(parts, context)
        if plain is not None:
            return plain[:MAX_RENDERED_CHARS]
    try:
        text = compile_template(source).render(**context)
    except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
        text = f"template error: {exc}"
    return text[:MAX_RENDERED_CHARS]


def render_all(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    return {name: render(source, context) for name, source in templates.items()}
