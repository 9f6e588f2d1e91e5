"""Annotation templates (summary, description, runbook URL) in a sandboxed Jinja2 environment.

Rule authors are users of the server, not its operators: the sandbox keeps a template from reaching
Python internals (`{{ ''.__class__ }}` is refused), and rendering errors become the annotation text
instead of failing the evaluation round.
"""

from __future__ import annotations

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


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render an annotation.

    >>> render("{{ labels.project }}: {{ value }} errors/min", {"labels": {"project": "shop"}, "value": 12})
    'shop: 12 errors/min'
    """
    if "{" not in source:
        return source
    try:
        text = compile_template(source).render(**context)
    except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
        text = f"template error: {exc}"
    return text[:MAX_RENDERED_CHARS]


def render_all(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    return {name: render(source, context) for name, source in templates.items()}
