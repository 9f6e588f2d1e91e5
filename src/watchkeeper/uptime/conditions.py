"""The assertion language of monitors: small, parsed (never evaluated as code), errors name the position.

    status == 200
    response_time < 300ms
    body.status == "UP"          body.items[0].name != "x"      (the body parsed as JSON)
    cert_expires_in > 14d
    body contains "ok"           body not contains "error"
    headers.content-type contains "json"
    status >= 200 and status < 400

A condition is `value operator value`; conditions are joined with `and`. Values are numbers, strings in
double quotes, true/false/null, durations (`300ms`, `2s`, `5m`, `1h`, `14d`) and names: `status`,
`response_time`, `body`, `headers`, `cert_expires_in`, `answers` (DNS) with `.key` and `[index]` after
them. A duration name (`response_time`, `cert_expires_in`) is compared only with a duration, so
`response_time < 300` is an error rather than a guess between milliseconds and seconds. A condition
whose name is missing (no certificate, body not JSON) is false, with the reason in the failure message.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

NAMES = {"status", "response_time", "body", "headers", "cert_expires_in", "answers"}
DURATION_NAMES = {"response_time", "cert_expires_in"}
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<duration>\d+(?:\.\d+)?(?:ms|s|m|h|d)\b)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<dot>\.)
  | (?P<index>\[\d+\])
    """,
    re.VERBOSE,
)


class ConditionError(ValueError):
    """The condition does not parse; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"at position {position}: {message}")
        self.position = position


@dataclass(frozen=True, slots=True)
class Path:
    root: str
    steps: tuple[str | int, ...]

    def __str__(self) -> str:
        return self.root + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.steps)


@dataclass(frozen=True, slots=True)
class Duration:
    seconds: float
    text: str


Operand = Path | Duration | str | float | bool | None


@dataclass(frozen=True, slots=True)
class Comparison:
    left: Operand
    operator: str  # one of COMPARISONS, "contains", "not contains"
    right: Operand
    text: str


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: all comparisons must hold."""

    comparisons: tuple[Comparison, ...]
    text: str

    def failures(self, facts: Mapping[str, Any]) -> list[str]:
        """Why the condition is false for these facts (empty when it holds)."""
        return [reason for c in self.comparisons if (reason := _failure(c, facts)) is not None]


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionError(f"unexpected character {text[position]!r}", position)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ConditionError("unexpected end of condition", len(self.text))
        self.at += 1
        return token

    def condition(self) -> Condition:
        if not self.tokens:
            raise ConditionError("empty condition", 0)
        comparisons = [self.comparison()]
        while (token := self.peek()) is not None:
            if token.kind == "name" and token.text == "and":
                self.at += 1
                comparisons.append(self.comparison())
            else:
                raise ConditionError(f"expected 'and' or the end, found {token.text!r}", token.position)
        return Condition(tuple(comparisons), self.text)

    def comparison(self) -> Comparison:
        start = self.peek().position if self.peek() else len(self.text)  # type: ignore[union-attr]
        left = self.operand()
        token = self.take()
        if token.kind == "op":
            operator = token.text
        elif token.kind == "name" and token.text == "contains":
            operator = "contains"
        elif token.kind == "name" and token.text == "not":
            after = self.take()
            if after.kind != "name" or after.text != "contains":
                raise ConditionError("expected 'contains' after 'not'", after.position)
            operator = "not contains"
        else:
            raise ConditionError(f"expected an operator (==, !=, <, <=, >, >=, contains), found {token.text!r}",
                                 token.position)
        right_token = self.peek()
        right = self.operand()
        end = self.tokens[self.at - 1]
        comparison = Comparison(left, operator, right, self.text[start:end.position + len(end.text)])
        _check_types(comparison, right_token.position if right_token else start)
        return comparison

    def operand(self) -> Operand:
        token = self.take()
        if token.kind == "string":
            return str(orjson.loads(token.text))
        if token.kind == "duration":
            unit = "ms" if token.text.endswith("ms") else token.text[-1]
            return Duration(float(token.text[: -len(unit)]) * UNITS[unit], token.text)
        if token.kind == "number":
            return float(token.text)
        if token.kind == "name":
            if token.text in ("true", "false"):
                return token.text == "true"
            if token.text == "null":
                return None
            if token.text not in NAMES:
                raise ConditionError(f"unknown name {token.text!r} (known: {', '.join(sorted(NAMES))})",
                                     token.position)
            return Path(token.text, self.steps())
        raise ConditionError(f"expected a value, found {token.text!r}", token.position)

    def steps(self) -> tuple[str | int, ...]:
        steps: list[str | int] = []
        while (token := self.peek()) is not None and token.kind in ("dot", "index"):
            self.at += 1
            if token.kind == "index":
                steps.append(int(token.text[1:-1]))
                continue
            key = self.take()
            if key.kind not in ("name", "number", "string"):
                raise ConditionError("expected a key after '.'", key.position)
            steps.append(str(orjson.loads(key.text)) if key.kind == "string" else key.text)
        return tuple(steps)


def _is_duration_name(operand: Operand) -> bool:
    return isinstance(operand, Path) and operand.root in DURATION_NAMES and not operand.steps


def _check_types(comparison: Comparison, position: int) -> None:
    left, right = comparison.left, comparison.right
    for a, b in ((left, right), (right, left)):
        if _is_duration_name(a) and not isinstance(b, Duration | Path):
            raise ConditionError(f"{a} is a duration: give a unit, e.g. 300ms, 2s, 14d", position)
    if comparison.operator.endswith("contains") and not isinstance(right, str | Path):
        raise ConditionError("'contains' needs a string on its right", position)


@functools.lru_cache(maxsize=4096)
def parse_condition(text: str) -> Condition:
    """Parse a condition; raises ConditionError naming the position of the problem.

    >>> parse_condition('status == 200 and response_time < 300ms').failures({"status": 200, "response_time": 0.1})
    []
    """
    return _Parser(text).condition()


class _Missing:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _resolve(operand: Operand, facts: Mapping[str, Any]) -> Any:
    if isinstance(operand, Duration):
        return operand.seconds
    if not isinstance(operand, Path):
        return operand
    if operand.root not in facts or facts[operand.root] is None:
        return _Missing(f"{operand.root} is not available")
    value: Any = facts[operand.root]
    if operand.root == "body" and operand.steps:
        try:
            value = orjson.loads(value)
        except (orjson.JSONDecodeError, TypeError):
            return _Missing("the body is not JSON")
    for step in operand.steps:
        if isinstance(step, str) and isinstance(value, Mapping):
            found = value.get(step, _Missing(""))
            if isinstance(found, _Missing) and operand.root == "headers":
                found = {k.lower(): v for k, v in value.items()}.get(step.lower(), found)
            value = found
        elif isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        else:
            return _Missing(f"{operand} does not exist")
        if isinstance(value, _Missing):
            return _Missing(f"{operand} does not exist")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _holds(operator: str, left: Any, right: Any) -> bool:
    if operator in ("contains", "not contains"):
        haystack = left if isinstance(left, str | list) else orjson.dumps(left).decode()
        found = right in haystack
        return found if operator == "contains" else not found
    a, b = _number(left), _number(right)
    if a is not None and b is not None and not isinstance(left, bool) and not isinstance(right, bool):
        left, right = a, b
    elif operator in ("==", "!="):
        same = left == right or (isinstance(left, str) != isinstance(right, str) and str(left) == str(right))
        return same if operator == "==" else not same
    else:
        return False
    return {
        "==": left == right, "!=": left != right, "<": left < right,
        "<=": left <= right, ">": left > right, ">=": left >= right,
    }[operator]


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, float) else f"{value:g}"
    return text if len(text) <= 80 else text[:77] + "..."


def _failure(comparison: Comparison, facts: Mapping[str, Any]) -> str | None:
    left, right = _resolve(comparison.left, facts), _resolve(comparison.right, facts)
    for value in (left, right):
        if isinstance(value, _Missing):
            return f"{comparison.text}: {value.reason}"
    if _holds(comparison.operator, left, right):
        return None
    if _is_duration_name(comparison.left):
        return f"{comparison.text}: was {_duration(float(left))}"
    if isinstance(comparison.left, Path) and comparison.left.root == "body" and not comparison.left.steps:
        return f"{comparison.text}: not in the body" if comparison.operator == "contains" else \
            f"{comparison.text}: found in the body"
    return f"{comparison.text}: was {_show(left)}"


def _duration(seconds: float) -> str:
    if abs(seconds) < 10:
        return f"{seconds * 1000:.0f}ms"
    if abs(seconds) < 3 * 86400:
        return f"{seconds:.0f}s"
    return f"{seconds / 86400:.1f}d"
