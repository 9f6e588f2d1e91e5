"""Annotation templates (summary, description, runbook URL) in a bounded, sandboxed Jinja2 environment.

Rule authors are users of the server, not its operators. The sandbox keeps a template from reaching
Python internals (`{{ ''.__class__ }}` is refused); the bounds (docs/alerting.md, "Template bounds") keep
one team's template from taking the memory or the evaluator time every team shares:

- time: a render stops after RENDER_SECONDS (checked on every loop step, call, filter and operator,
  so `{% for %}` loops and recursive macros are cut, not only slow filters);
- size: every string, list or number a template builds is at most MAX_VALUE_CHARS characters (items,
  MAX_INT_BITS bits), checked *before* the operations that multiply size (`*`, `**`, `%`, `~`, `+`,
  `center`, `replace`, `join`, `format`…), and the output stops at MAX_RENDERED_CHARS;
- no constant folding: Jinja evaluates constant expressions while compiling (`{{ 'a' * 50000000 }}`
  was a 50 MB string held by the compiled template); the sandbox's intercepted operators are never
  folded, and folded filters go through the same bounds;
- the compiled-template cache holds at most CACHE_BYTES (source plus generated code).

At save and back-test, `bounds_errors` renders each template once with a sample alert, off the event
loop; a template over a bound is refused with the field named. At evaluation, a render over a bound
becomes the annotation text ("template error: …"), and a template that ran out of time is not run again
while it is cached, so it costs the shared evaluator one deadline, not one per alert.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_RENDERED_CHARS = 4000
# Any one value a template builds: a string of this many characters, a list of this many items (its
# strings counted too). Annotations are at most 4,000 characters; 25 times that leaves room for
# building them without letting a template hold megabytes.
MAX_VALUE_CHARS = 100_000
# Integers: 2 ** 16384 has 4,933 digits, beyond what Python prints anyway (4,300).
MAX_INT_BITS = 16_384
# range() in a template; nested loops are stopped by the deadline.
MAX_RANGE = 10_000
# A render of a typical annotation takes 20-200 µs; 0.2 s is a template doing real work in a loop.
RENDER_SECONDS = 0.2
CACHE_BYTES = 8 * 1024 * 1024
# Walking a nested value to weigh it stops after this many items (a shared child nested in itself would
# otherwise weigh billions of nodes).
MAX_WEIGHED_ITEMS = 200_000
# What a template sees when it is checked at save and back-test (the evaluator's context, with samples).
SAMPLE_CONTEXT: Mapping[str, Any] = {
    "labels": {"alertname": "Sample rule", "severity": "high", "priority": "P1", "project": "sample",
               "project_id": "1", "issue": "1", "monitor": "1", "monitor_name": "Sample"},
    "value": 12.5, "rule": "Sample rule", "title": "Sample rule", "subject": "issue:1",
    "signal": {"title": "Sample error", "name": "Sample", "error": "timed out", "days_left": 10.0,
               "url": "https://example.com/"},
}


class TemplateBoundsError(SecurityError):
    """A template went over one of its bounds; the message says which."""


# The deadline of the render running in this thread (renders run in the evaluator's and the request
# pool's threads). Checked on every loop step (each `{% for %}` iterates through `_on_time`), call,
# filter and operator: nothing a template repeats escapes it, and no trace slows the plain ones.
_deadline = threading.local()


def _on_time() -> None:
    at = getattr(_deadline, "at", None)
    if at is None:
        return
    if time.monotonic() > at:
        raise TemplateBoundsError(f"the template took longer than {_deadline.seconds:g} s to render")
    # A busy template hands the interpreter lock over every 256 steps (~50 µs) rather than holding it for
    # the 5 ms switch interval: the event loop and the database threads, each needing it many times per
    # request, would otherwise wait 5 ms each time (/health took 1.5 s beside four slow templates).
    _deadline.steps += 1
    if not _deadline.steps & 255:
        time.sleep(0)


def _timed(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        _on_time()
        yield item


def _too_big(what: str) -> TemplateBoundsError:
    return TemplateBoundsError(f"{what} would be larger than the template limit of {MAX_VALUE_CHARS:,} characters")


def weight(value: Any, budget: int = MAX_VALUE_CHARS) -> int:
    """The size of a value as a template holds it: characters of strings, one per other item, counted
    through nested lists and dicts; stops counting once over `budget`.

    >>> weight(["ab", {"c": "de"}])
    8
    """
    total, seen, stack = 0, 0, [value]
    while stack:
        item = stack.pop()
        seen += 1
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, (list, tuple, set, frozenset, dict)):
            total += len(item)
            stack.extend(item.items() if isinstance(item, dict) else item)
        else:
            total += 1
        if total > budget or seen > MAX_WEIGHED_ITEMS:
            return max(total, budget + 1)
    return total


def _check(value: Any, what: str = "a value") -> Any:
    _on_time()
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateBoundsError(f"{what}: a number larger than {MAX_INT_BITS} bits")
    if weight(value) > MAX_VALUE_CHARS:
        raise _too_big(what)
    return value


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


# A printf or str.format width/precision of five digits or more, or one taken from an argument (`*`).
_PRINTF_WIDE = re.compile(r"%[-+ #0(\w)]*(?:\*|\d{5,})|%[^%a-zA-Z]*\.(?:\*|\d{5,})")
_FORMAT_WIDE = re.compile(r"\{[^{}]*:[^{}]*(?:\d{5,}|\{)[^{}]*\}")


def _check_format(spec: Any, arguments: Any, what: str) -> None:
    if isinstance(spec, str) and (_PRINTF_WIDE.search(spec) or _FORMAT_WIDE.search(spec)):
        raise TemplateBoundsError(f"{what}: a field width or precision of 10,000 or more")
    if weight(spec) + weight(arguments) > MAX_VALUE_CHARS:
        raise _too_big(what)


def _product_estimate(left: Any, right: Any) -> int:
    """The weight of `left * right` before computing it."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(count, int):
            return weight(sequence) * max(count, 0)
    return 0


def _binop(op: str, left: Any, right: Any) -> Any:
    what = f"the {op!r} operator"
    if op == "*":
        if _product_estimate(left, right) > MAX_VALUE_CHARS:
            raise _too_big(what)
        if isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateBoundsError(f"{what}: a number larger than {MAX_INT_BITS} bits")
        return _check(left * right, what)
    if op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and \
                right * max(abs(left).bit_length() - 1, 0) > MAX_INT_BITS:
            raise TemplateBoundsError(f"{what}: a number larger than {MAX_INT_BITS} bits")
        return _check(left ** right, what)
    if op == "+":
        if isinstance(left, (str, bytes, list, tuple)) and weight(left) + weight(right) > MAX_VALUE_CHARS:
            raise _too_big(what)
        return _check(left + right, what)
    if op == "%":
        if isinstance(left, str):
            _check_format(left, right, what)
        return _check(left % right, what)
    raise TemplateBoundsError(f"operator {op!r} is not allowed")


def _join(pieces: Iterable[Any], separator: str, what: str) -> str:
    texts = [str(_check(p, what)) if not isinstance(p, str) else p for p in pieces]
    if sum(map(len, texts)) + len(separator) * len(texts) > MAX_VALUE_CHARS:
        raise _too_big(what)
    return separator.join(texts)


# Methods of str whose result can be much larger than their inputs, with the size they would make.
_STR_GROWTH: dict[str, Callable[..., int]] = {
    "center": lambda s, width=0, *a: max(len(s), _int(width)),
    "ljust": lambda s, width=0, *a: max(len(s), _int(width)),
    "rjust": lambda s, width=0, *a: max(len(s), _int(width)),
    "zfill": lambda s, width=0: max(len(s), _int(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * max(_int(tabsize), 0),
    "replace": lambda s, old="", new="", *a: len(s) + (s.count(old) if old else len(s) + 1) * weight(new),
    "join": lambda s, items=(): weight(items) + len(s) * weight(items),
}


def _filter_growth(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The size a built-in filter would make, for the filters that can make more than they are given."""
    value = args[0] if args else ""
    text = value if isinstance(value, str) else ""
    if name == "center":
        return max(len(text), _int(args[1] if len(args) > 1 else kwargs.get("width", 80)))
    if name == "indent":
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        unit = len(width) if isinstance(width, str) else _int(width)
        return len(text) + (text.count("\n") + 1) * max(unit, 0)
    if name == "replace":
        old, new = [*args[1:3], "", ""][:2]
        old, new = kwargs.get("old", old), kwargs.get("new", new)
        return len(text) + (text.count(old) if old else len(text) + 1) * weight(new)
    if name == "wordwrap":
        width = _int(args[1] if len(args) > 1 else kwargs.get("width", 79))
        wrap = args[4] if len(args) > 4 else kwargs.get("wrapstring") or "\n"
        return len(text) + (len(text) // max(width, 1) + 1) * weight(wrap)
    if name == "join":
        separator = args[1] if len(args) > 1 else kwargs.get("d", "")
        return weight(value) * (1 + weight(separator))
    return 0


_TIMED = "watchkeeper_timed"


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `~` (string concatenation) going through the bounded join."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox (immutable: no `list.append` to grow a value in a loop) with size bounds on every
    operator, filter and call that can make a value larger than its inputs."""

    code_generator_class = _BoundedCodeGenerator
    # Intercepted operators are never constant-folded at compile time, and go through call_binop.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(autoescape=False, trim_blocks=True, optimized=False, finalize=self._printed)
        self.globals["range"] = self._range
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[_TIMED] = _timed

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's syntax tree, each `{% for %}` iterating through the deadline check."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _TIMED, [], [], None, None, lineno=loop.lineno)
        return tree

    @staticmethod
    def _range(*args: Any) -> range:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise TemplateBoundsError(f"range: at most {MAX_RANGE:,} numbers")
        return numbers

    @staticmethod
    def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        what = f"the {name!r} filter"

        def bounded(*args: Any, **kwargs: Any) -> Any:
            _on_time()
            # Filters that take the environment or context get it first; the value filtered comes after.
            values = args[1:] if getattr(function, "jinja_pass_arg", None) is not None else args
            if _filter_growth(name, tuple(values), kwargs) > MAX_VALUE_CHARS:
                raise _too_big(what)
            if name == "format" and values:
                _check_format(values[0], (values[1:], kwargs), what)
            return _check(function(*args, **kwargs), what)

        for attribute in ("jinja_pass_arg", "__name__", "__doc__"):
            if hasattr(function, attribute):
                setattr(bounded, attribute, getattr(function, attribute))
        return bounded

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        _on_time()
        return _binop(operator_name, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # The sandbox hands out str.format wrapped (functools.update_wrapper): look at the method inside.
        method = getattr(__obj, "__wrapped__", __obj)
        owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        what = f"{name}()"
        _on_time()
        if isinstance(owner, str):
            if name in ("format", "format_map"):
                _check_format(owner, (args, kwargs), what)
            growth = _STR_GROWTH.get(name)
            if growth is not None and growth(owner, *args, **kwargs) > MAX_VALUE_CHARS:
                raise _too_big(what)
        return _check(super().call(__context, __obj, *args, **kwargs), what)

    def bounded_concat(self, pieces: tuple[Any, ...]) -> str:
        return _join(pieces, "", "the '~' operator")

    @staticmethod
    def _printed(value: Any) -> Any:
        return _check(value, "a printed value")


_environment = BoundedEnvironment()


# --- the cache --------------------------------------------------------------------------------------------

@dataclass
class _Compiled:
    plain: tuple[str | tuple[str, ...], ...] | None
    template: Template | None
    weight: int
    # Why this template is not rendered any more (it ran out of time once).
    refused: str | None = None


class TemplateCache:
    """Compiled templates by source, least recently used first out, at most `limit` bytes (the source
    and the generated Python code, the bulk of what a compiled template holds)."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self.bytes = 0
        self._entries: OrderedDict[str, _Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, source: str, *, template: bool = False) -> _Compiled:
        with self._lock:
            entry = self._entries.get(source)
            if entry is not None:
                self._entries.move_to_end(source)
                if not template or entry.template is not None:
                    return entry
        if entry is None:
            entry = _Compiled(_plain_parts(source), None, 2 * len(source))
        if template or entry.plain is None:
            entry.template, code_size = _compile(source)
            entry.weight = 2 * len(source) + code_size
        with self._lock:
            old = self._entries.pop(source, None)
            self.bytes -= old.weight if old else 0
            if entry.weight <= self.limit:
                self._entries[source] = entry
                self.bytes += entry.weight
            while self.bytes > self.limit:
                _, dropped = self._entries.popitem(last=False)
                self.bytes -= dropped.weight
        return entry


def _compile(source: str) -> tuple[Template, int]:
    try:
        code = _environment.compile(source, raw=True)
        template = _environment.template_class.from_code(
            _environment, compile(code, "<template>", "exec"), _environment.make_globals(None), None)
    except TemplateError as exc:
        raise ValueError(f"template error: {exc}") from None
    return template, len(code)


cache = TemplateCache()


def compile_template(source: str) -> Template:
    """The compiled template; raises ValueError naming the syntax error (checked when a rule is saved)."""
    entry = cache.get(source, template=True)
    assert entry.template is not None
    return entry.template


# --- plain templates --------------------------------------------------------------------------------------

# `{{ name }}` and `{{ name.key.key }}`, nothing else: what most annotations are made of.
_PLAIN_NAME = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*\}\}")
# Jinja reads these as literals, not as names of the context.
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None"})
_SCALARS = (str, int, float, bool, type(None))
_NOT_PLAIN = object()


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


# --- rendering --------------------------------------------------------------------------------------------

def _render_template(template: Template, context: Mapping[str, Any], seconds: float) -> tuple[str, bool]:
    """The output (at most MAX_RENDERED_CHARS) and whether there was more."""
    out: list[str] = []
    size = 0
    previous = getattr(_deadline, "at", None)
    _deadline.at, _deadline.seconds, _deadline.steps = time.monotonic() + seconds, seconds, 0
    try:
        for chunk in template.generate(**context):
            out.append(chunk)
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                return "".join(out)[:MAX_RENDERED_CHARS], True
    finally:
        _deadline.at = previous
    return "".join(out), False


def render(source: str, context: Mapping[str, Any], *, seconds: float = RENDER_SECONDS) -> str:
    """Render an annotation.

    >>> render("{{ labels.project }}: {{ value }} errors/min", {"labels": {"project": "shop"}, "value": 12})
    'shop: 12 errors/min'

    A template of plain `{{ names }}` is filled in directly, with what Jinja would print: an alert storm
    renders one per new alert, and the sandbox's checks on each lookup were most of that cost.
    """
    if "{" not in source:
        return source
    try:
        entry = cache.get(source)
    except ValueError as exc:
        return str(exc)
    if entry.plain is not None:
        plain = _render_plain(entry.plain, context)
        if plain is not None:
            return plain[:MAX_RENDERED_CHARS]
    if entry.refused is not None:
        return f"template error: {entry.refused}"
    try:
        template = entry.template or compile_template(source)
        text, _ = _render_template(template, context, seconds)
    except TemplateBoundsError as exc:
        if "longer than" in str(exc):
            entry.refused = f"{exc} once, and is not rendered again until it is changed"
        text = f"template error: {exc}"
    except Exception as exc:  # any failure of a user's template is its text, not a failed round
        text = f"template error: {exc}"
    return text[:MAX_RENDERED_CHARS]


def render_all(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    return {name: render(source, context) for name, source in templates.items()}


# Templates tried at save and back-test, one at a time: a member posting slow templates from many
# requests gets one thread's worth of the interpreter, and the event loop keeps the rest.
_trials = threading.Semaphore(1)


def annotation_errors(templates: Mapping[str, str], context: Mapping[str, Any] = SAMPLE_CONTEXT, *,
                      seconds: float = RENDER_SECONDS) -> dict[str, str]:
    """The templates that do not compile or go over a bound, by name, with why: each is compiled and
    rendered once with a sample alert. Takes up to `seconds` per template: call it off the event loop.

    >>> annotation_errors({"summary": "{{ 'a' * 50000000 }}", "runbook": "{{ x"})["runbook"]
    "template error: unexpected end of template, expected 'end of print statement'."
    """
    errors: dict[str, str] = {}
    for name, source in templates.items():
        if "{" not in source:
            continue
        try:
            template = compile_template(source)
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        try:
            with _trials:
                _, more = _render_template(template, context, seconds)
        except TemplateBoundsError as exc:
            errors[name] = str(exc)
            continue
        except Exception:  # other errors depend on the alert; the annotation shows them
            continue
        if more:
            errors[name] = f"the template renders more than {MAX_RENDERED_CHARS:,} characters"
    return errors
