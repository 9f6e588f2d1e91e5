"""The rule form, built from the rule schema (`alerting.rules.RuleIn`) rather than written out by hand:
every kind (`RuleIn.kind`'s choices) gets a fieldset from its spec model, a `Literal` becomes a menu, a
number an input, a list of conditions a text area. A kind or aggregation added to the schema appears
in the form without changing this module.

Posted values go back through the same schema: its validation errors are shown next to the field they
name (`threshold.window_minutes`), the form-wide ones above the form.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from starlette.datastructures import FormData

from watchkeeper.alerting.rules import AlertRule, RuleIn
from watchkeeper.lib.signals import CATALOGUE
from watchkeeper.web.form_errors import human_message

# Annotations most rules have, each with an input of its own; others go in the free-form box.
NAMED_ANNOTATIONS = ("summary", "description", "runbook_url")
# Fields the schema checks against a list it does not spell as a Literal: offered as menus.
DYNAMIC_CHOICES = {"signal": lambda: sorted(CATALOGUE)}
_CONDITION = re.compile(r"^\s*([^\s<>=!]+)\s*(>=|<=|==|!=|>|<)\s*(.*?)\s*$")
FORM_ERROR = "__form__"


class FormInputError(ValueError):
    """A value the form could not turn into what the schema takes (before the schema sees it)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class FormField:
    name: str  # the posted name, dotted like the schema's error locations: "threshold.window_minutes"
    label: str
    widget: str  # select, number, text, checkbox, list, conditions
    choices: tuple[str, ...] = ()
    required: bool = False
    help: str = ""
    integer: bool = False
    default: Any = None

    @property
    def input_id(self) -> str:
        return "rule-" + self.name.replace(".", "-").replace("_", "-")


@dataclass
class KindSection:
    kind: str
    spec_field: str | None  # the RuleIn field holding this kind's settings (None: the kind has none)
    fields: list[FormField] = field(default_factory=list)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """`X | None` → (X, True)."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        if len(members) == 1:
            return members[0], optional
        return Union[tuple(members)], optional  # noqa: UP007 - rebuilt from parts
    return annotation, False


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _label(name: str) -> str:
    text = name.replace("_", " ")
    for unit in (" seconds", " minutes"):
        if text.endswith(unit):
            text = f"{text[: -len(unit)]} ({unit.strip()})"
    return text[:1].upper() + text[1:]


def _one_field(name: str, info: FieldInfo, prefix: str) -> list[FormField]:
    annotation, optional = _unwrap(info.annotation)
    full = f"{prefix}{name}"
    required = info.is_required()
    help_text = info.description or ""
    default = None if required else info.get_default(call_default_factory=True)
    common: dict[str, Any] = {"required": required, "help": help_text, "default": default}
    if _is_model(annotation):
        return model_fields(annotation, f"{full}.")
    if get_origin(annotation) is Literal:
        return [FormField(full, _label(name), "select", tuple(str(a) for a in get_args(annotation)), **common)]
    if name in DYNAMIC_CHOICES and annotation is str:
        return [FormField(full, _label(name), "select", tuple(DYNAMIC_CHOICES[name]()), **common)]
    if annotation is bool:
        return [FormField(full, _label(name), "checkbox", **common)]
    if annotation in (int, float):
        return [FormField(full, _label(name), "number", integer=annotation is int, **common)]
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (str,)
        if _is_model(item):
            return [FormField(full, _label(name), "conditions", **common)]
        return [FormField(full, _label(name), "list", **common)]
    del optional  # text either way: empty means "not given"
    return [FormField(full, _label(name), "text", **common)]


def model_fields(model: type[BaseModel], prefix: str = "") -> list[FormField]:
    """The form fields of a schema model, in its order (nested models flattened with dotted names)."""
    found: list[FormField] = []
    for name, info in model.model_fields.items():
        found += _one_field(name, info, prefix)
    return found


def kinds() -> list[str]:
    annotation, _ = _unwrap(RuleIn.model_fields["kind"].annotation)
    return [str(k) for k in get_args(annotation)]


def kind_sections() -> list[KindSection]:
    """One fieldset per rule kind, from the RuleIn field named like the kind (`threshold: ThresholdSpec`)."""
    sections = []
    for kind in kinds():
        info = RuleIn.model_fields.get(kind)
        model, _ = _unwrap(info.annotation) if info is not None else (None, False)
        if isinstance(model, type) and issubclass(model, BaseModel):
            sections.append(KindSection(kind, kind, model_fields(model, f"{kind}.")))
        else:
            sections.append(KindSection(kind, None))
    return sections


def general_fields() -> list[FormField]:
    """RuleIn's own fields, except the kinds' specs, labels and annotations (they have their own boxes)."""
    skip = {*kinds(), "labels", "annotations"}
    found: list[FormField] = []
    for name, info in RuleIn.model_fields.items():
        if name not in skip:
            found += _one_field(name, info, "")
    return found


# --- values shown in the form ---------------------------------------------------------------------------


def _condition_line(item: Mapping[str, Any]) -> str:
    value = item.get("value")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    if isinstance(value, str) and (text.strip() != text or _number(text) is not None or text in ("true", "false")):
        text = '"' + text.replace('"', '\\"') + '"'
    return f"{item.get('field', '')} {item.get('op', '==')} {text}"


def _shown(value: Any, widget: str) -> Any:
    if widget == "checkbox":
        return bool(value)
    if value is None:
        return ""
    if widget == "conditions":
        return "\n".join(_condition_line(item) for item in value)
    if widget == "list":
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _pairs(mapping: Mapping[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in mapping.items())


def initial_values(rule: AlertRule | None = None) -> dict[str, Any]:
    """What the form shows: a stored rule's settings, or the schema's defaults for a new one."""
    every = general_fields() + [f for s in kind_sections() for f in s.fields]
    raw: dict[str, Any] = {f.name: f.default for f in every}
    raw["kind"] = raw.get("kind") or "threshold"
    if rule is not None:
        spec = rule.event if rule.kind == "event" else rule.threshold
        spec = getattr(rule, rule.kind, None) if spec is None else spec
        raw |= {"name": rule.name, "kind": rule.kind, "severity": rule.severity, "enabled": rule.enabled}
        if isinstance(spec, BaseModel):
            raw |= _flatten(spec.model_dump(), f"{rule.kind}.")
    values = {f.name: _shown(raw.get(f.name), f.widget) for f in every}
    labels = rule.labels if rule else {}
    annotations = rule.annotations if rule else {}
    values["labels"] = _pairs(labels)
    for name in NAMED_ANNOTATIONS:
        values[f"annotations.{name}"] = annotations.get(name, "")
    values["annotations.other"] = _pairs({k: v for k, v in annotations.items() if k not in NAMED_ANNOTATIONS})
    return values


# --- posted values → RuleIn -----------------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _condition_value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    if text in ("true", "false"):
        return text == "true"
    number = _number(text)
    return number if number is not None and text.lower() not in ("nan", "inf", "-inf", "infinity") else text


def _conditions(name: str, text: str) -> list[dict[str, Any]]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _CONDITION.match(line)
        if match is None:
            raise FormInputError(name, f"line {number}: write a condition as `field op value`, e.g. "
                                       "`threshold_days <= 14` (op: == != > >= < <=)")
        found.append({"field": match[1], "op": match[2], "value": _condition_value(match[3])})
    return found


def _pairs_in(name: str, text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormInputError(name, f"line {number}: write one `name=value` per line")
        found[key.strip()] = value.strip()
    return found


def _text(form: FormData, name: str, limit: int = 10_000) -> str:
    value = form.get(name)
    text = value if isinstance(value, str) else ""
    if "\x00" in text:
        raise FormInputError(name, "may not contain NUL characters")
    return text.strip()[:limit]


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _read_fields(form: FormData, fields: list[FormField], into: dict[str, Any]) -> None:
    for f in fields:
        if f.widget == "checkbox":
            _set(into, f.name, form.get(f.name) == "on")
            continue
        text = _text(form, f.name)
        if f.widget == "conditions":
            _set(into, f.name, _conditions(f.name, text))
        elif f.widget == "list":
            if text:
                _set(into, f.name, [part.strip() for part in text.split(",") if part.strip()])
        elif text or f.required:
            _set(into, f.name, text)  # the schema converts and checks numbers, menus and text


@dataclass
class RuleForm:
    """A posted rule form: the values to show again, and the RuleIn or the errors by field."""

    values: dict[str, Any]
    rule: RuleIn | None
    errors: dict[str, str]


def values_of(form: FormData) -> dict[str, Any]:
    every = general_fields() + [f for s in kind_sections() for f in s.fields]
    values: dict[str, Any] = {}
    for f in every:
        raw = form.get(f.name)
        values[f.name] = (raw == "on") if f.widget == "checkbox" else (raw if isinstance(raw, str) else "")
    for name in ("labels", *(f"annotations.{n}" for n in NAMED_ANNOTATIONS), "annotations.other"):
        raw = form.get(name)
        values[name] = raw if isinstance(raw, str) else ""
    return values


def read_rule_form(form: FormData) -> RuleForm:
    """The posted form as a RuleIn, or the errors by field name (FORM_ERROR: the form as a whole)."""
    values = values_of(form)
    try:
        data: dict[str, Any] = {}
        _read_fields(form, general_fields(), data)
        kind = data.get("kind")
        for section in kind_sections():
            if section.kind == kind and section.spec_field is not None:
                data[section.spec_field] = {}
                _read_fields(form, section.fields, data)
        data["labels"] = _pairs_in("labels", _text(form, "labels"))
        annotations = {n: _text(form, f"annotations.{n}", 4000) for n in NAMED_ANNOTATIONS}
        extra = _pairs_in("annotations.other", _text(form, "annotations.other"))
        data["annotations"] = {k: v for k, v in {**annotations, **extra}.items() if v}
    except FormInputError as exc:
        return RuleForm(values, None, {exc.name: str(exc)})
    try:
        return RuleForm(values, RuleIn.model_validate(data), {})
    except ValidationError as exc:
        return RuleForm(values, None, errors_by_field(exc, values))


def errors_by_field(exc: ValidationError, values: Mapping[str, Any]) -> dict[str, str]:
    """Each schema error under the longest form field name its location starts with."""
    known = set(values) | {"annotations", *kinds()}  # a kind: its spec as a whole (e.g. "ratio needs …")
    errors: dict[str, str] = {}
    for error in exc.errors():
        parts = [str(p) for p in error["loc"]]
        name = FORM_ERROR
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in known:
                name = candidate
                break
        message = human_message(error)
        if name == "annotations":  # the schema names the annotation in the message: "summary: …"
            named = next((n for n in NAMED_ANNOTATIONS if message.startswith(f"{n}: ")), None)
            name = f"annotations.{named}" if named else "annotations.other"
        errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors
