"""Annotation templates of plain `{{ names }}` are filled in without Jinja, and must read exactly as Jinja's
sandbox renders them; anything else is left to Jinja."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.alerting.templates import _plain_parts, compile_template, render

CONTEXT: dict[str, Any] = {
    "labels": {"project": "shop", "issue": "7", "items": "x"}, "value": 12.5, "rule": "New error type",
    "signal": {"title": "KeyError: 'id'", "count": 3, "ok": True, "none": None, "nested": {"deep": "here"},
               "list": [1, "a"]},
    "subject": "issue:7", "flag": False, "nothing": None,
}


@pytest.mark.parametrize("source", [
    "New issue in {{ labels.project }}: {{ signal.title }}",
    "{{value}} and {{ value }} and {{  rule  }}",
    "{{ signal.count }} / {{ signal.ok }} / {{ signal.none }} / {{ flag }} / {{ nothing }}",
    "{{ signal.nested.deep }}", "{{ signal.missing }}!", "{{ signal.missing.deeper }}", "{{ missing }}",
    "{{ missing.key }}", "{{ signal.list }}", "{{ signal.nested }}", "{{ labels.items }}", "{{ subject.x }}",
    "{{ none }}", "{{ True }}", "{{ range }}", "{{ value | round(1) }}", "{{ labels['project'] }}",
    "{% if value %}yes{% endif %}", "a } b {{ rule }}", "line\n{{ rule }}\n", "{{ rule }}{{", "{# c #}{{ rule }}",
    "{{ rule }} ünïcode ✓",
])
def test_plain_templates_read_as_jinja_renders_them(source: str) -> None:
    try:
        expected = compile_template(source).render(**CONTEXT)
    except ValueError as exc:  # a syntax error: compile_template says "template error: …" already
        expected = str(exc)
    except Exception as exc:  # render() turns these into the annotation text
        expected = f"template error: {exc}"
    assert render(source, CONTEXT) == expected


def test_only_text_and_dotted_names_take_the_direct_way() -> None:
    assert _plain_parts("New issue in {{ labels.project }}") == ("New issue in ", ("labels", "project"), "")
    for source in ("{{ value | round(1) }}", "{{ labels.items }}", "{{ none }}", "a\n{{ b }}", "{% if a %}{% endif %}"):
        assert _plain_parts(source) is None
