"""Frame variables and breadcrumb data are scrubbed in the walk that trims them (one walk instead of
two): the stored event must be exactly what normalising, then scrubbing, gives."""

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.errors.interfaces import MAX_DEPTH, MAX_ITEMS, MAX_STRING_BYTES
from watchkeeper.errors.normalize import normalize_event
from watchkeeper.errors.scrubbing import EventScrubber, ScrubbingRules, scrub_event

NOW = 1_700_000_000.0
VISA = 4111111111111111


def two_walks(payload: dict[str, Any], rules: ScrubbingRules) -> dict[str, Any]:
    event = normalize_event(copy.deepcopy(payload), received_at=NOW, client_ip="10.0.0.1")
    return scrub_event(event, rules)


def one_walk(payload: dict[str, Any], rules: ScrubbingRules) -> dict[str, Any]:
    scrubber = EventScrubber(rules)
    event = normalize_event(
        copy.deepcopy(payload), received_at=NOW, client_ip="10.0.0.1", trim_vars=scrubber.trim_and_scrub
    )
    scrubber.scrub(event, vars_scrubbed=True)
    return event


def event_with(variables: Any, crumb_data: Any = None) -> dict[str, Any]:
    frames = [{"function": "charge", "module": "shop", "vars": variables}]
    return {
        "event_id": "a" * 32,
        "exception": {"values": [{"type": "ValueError", "value": "boom", "stacktrace": {"frames": frames}}]},
        "threads": {"values": [{"id": 1, "stacktrace": {"frames": copy.deepcopy(frames)}}]},
        "stacktrace": {"frames": copy.deepcopy(frames)},
        "breadcrumbs": [{"message": "paid", "data": crumb_data if crumb_data is not None else variables}],
    }


def same_event(payload: dict[str, Any], rules: ScrubbingRules) -> dict[str, Any]:
    expected, got = two_walks(payload, rules), one_walk(payload, rules)
    # Compared as JSON: the stored document is what must not change (event ids are random only
    # when missing, and here they are given).
    assert orjson.dumps(got) == orjson.dumps(expected)
    return got


def first_vars(event: dict[str, Any]) -> Any:
    return event["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]


RULES = [
    ScrubbingRules(),
    ScrubbingRules(scrub_ip_addresses=False),
    ScrubbingRules(enabled=False),
    ScrubbingRules(extra_fields=("iban",), safe_fields=("password", "note")),
]


def nested(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = {f"level{level}": leaf}
    return leaf


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"user": "bob@example.com", "n": 3, "ok": True, "none": None, "r": 0.5}, id="plain"),
        pytest.param(nested(MAX_DEPTH - 2, {"password": "hunter2", "who": "bob@example.com"}), id="deep-sensitive"),
        pytest.param(nested(MAX_DEPTH + 3, {"password": "hunter2"}), id="too-deep-sensitive"),
        pytest.param({"password": nested(MAX_DEPTH + 3, "x")}, id="sensitive-over-too-deep-value"),
        pytest.param({"password": "x" * (MAX_STRING_BYTES + 5)}, id="sensitive-over-long-string"),
        pytest.param({"password": float("nan"), "token": float("inf")}, id="sensitive-nan-becomes-null"),
        pytest.param({"password": None}, id="sensitive-null"),
        pytest.param({"note": "bob@example.com " + "x" * MAX_STRING_BYTES}, id="long-string-with-email"),
        pytest.param({"note": "bob@example.com é"}, id="non-ascii-with-email"),
        pytest.param({"note": "mail bob@example.com", "big": 2**70}, id="email-then-huge-int"),
        pytest.param({"card": VISA, "cards": [VISA, str(VISA)], "n": 2**65}, id="cards-then-huge-int"),
        pytest.param({"who": "a@b.io", "ключ": 1}, id="replaced-then-non-ascii-key"),
        pytest.param({"who": "a@b.io", "k" * 257: 1}, id="replaced-then-long-key"),
        pytest.param({f"k{i}": "a@b.io" for i in range(MAX_ITEMS + 1)}, id="too-many-items"),
        pytest.param({"list": ["a@b.io"] * (MAX_ITEMS + 1)}, id="too-long-list"),
        pytest.param({"list": [["10.1.2.3", {"api_key": "k"}], float("nan")]}, id="nan-in-list"),
        pytest.param({"note": {"who": "a@b.io", "deep": nested(MAX_DEPTH, 1)}}, id="safe-key-over-deep"),
        pytest.param({"iban": "DE89370400440532013000", "x": "Bearer abcdefghijkl"}, id="extra-field"),
        pytest.param(["bob@example.com", {"password": "p"}], id="positional-vars"),
    ],
)
def test_one_walk_stores_what_two_walks_store(variables: Any, rules: ScrubbingRules) -> None:
    same_event(event_with(variables), rules)


def test_a_sensitive_key_nested_deep_is_filtered_in_the_one_walk() -> None:
    event = same_event(event_with(nested(MAX_DEPTH - 2, {"password": "hunter2"})), ScrubbingRules())
    inner = first_vars(event)
    for level in reversed(range(MAX_DEPTH - 2)):
        inner = inner[f"level{level}"]
    assert inner == {"password": "[Filtered]"}


def test_a_string_over_the_bound_holding_an_email_is_clipped_then_scrubbed() -> None:
    text = "bob@example.com " + "x" * MAX_STRING_BYTES
    note = first_vars(same_event(event_with({"note": text}), ScrubbingRules()))["note"]
    assert note.startswith("[email] xxx") and note.endswith("…")


def test_replacements_made_before_a_broken_bound_do_not_leak_into_the_input() -> None:
    """The walk puts back what it replaced before falling back to a copy: the payload is unchanged."""
    variables = {"who": "a@b.io", "card": VISA, "password": "p", "late": "é"}
    original = copy.deepcopy(variables)
    scrubber = EventScrubber(ScrubbingRules())
    assert scrubber.trim_and_scrub(variables) == {
        "who": "[email]", "card": "[creditcard]", "password": "[Filtered]", "late": "é"
    }
    assert variables == original


# Values that reach every bound and every scrubbing rule.
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.sampled_from([VISA, "a@b.io", "10.1.2.3", "Bearer abcdefghijk", "é" * 3, "x" * (MAX_STRING_BYTES + 1)])
    | st.sampled_from([2**64, 2**64 - 1, -(2**63), -(2**63) - 1, float("nan"), float("-inf")])  # the int/float bounds
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["password", "note", "iban", "who", "k" * 257, "ключ", "ok"]) | st.text(max_size=3),
            children,
            max_size=4,
        )
        # Over-wide containers of scalars only: nested, they would multiply into huge examples.
        | st.builds(lambda v: dict.fromkeys((f"k{i}" for i in range(MAX_ITEMS + 1)), v), scalars)
        | st.builds(lambda v: [v] * (MAX_ITEMS + 1), scalars)
        | st.builds(lambda v: nested(MAX_DEPTH, v), children)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["password", "note", "iban", "who", "ok", "x"]), values, max_size=5),
       st.sampled_from(RULES))
def test_any_variables_store_what_two_walks_store(variables: dict[str, Any], rules: ScrubbingRules) -> None:
    same_event(event_with(variables, crumb_data=variables), rules)
