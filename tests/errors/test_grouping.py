from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from watchkeeper.errors.grouping import (
    GROUPING_CONFIG,
    Grouping,
    compute_grouping,
    event_culprit,
    event_metadata,
    event_title,
    parameterize,
)
from watchkeeper.errors.normalize import normalize_event

RECEIVED_AT = 4_000_000_000.0  # after any event the SDK stamps, so no clock-drift correction


# --- capturing real events with sentry-sdk ----------------------------------------------------------


class CollectingTransport(Transport):
    """Keeps the SDK's envelopes in memory instead of sending them."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type in ("event", "transaction"):
                self.events.append(orjson.loads(item.get_bytes()))


class Sdk:
    def __init__(self) -> None:
        self.transport = CollectingTransport()
        self.client = sentry_sdk.Client(
            dsn="http://key@127.0.0.1:9/1",
            transport=self.transport,
            include_local_variables=True,
            default_integrations=False,
            auto_enabling_integrations=False,
        )

    def _received(self) -> dict[str, Any]:
        (raw,) = self.transport.events
        self.transport.events.clear()
        return normalize_event(raw, received_at=RECEIVED_AT)

    def exception(self, action: Callable[[], object], fingerprint: list[str] | None = None) -> dict[str, Any]:
        with sentry_sdk.new_scope() as scope:
            scope.set_client(self.client)
            if fingerprint is not None:
                scope.fingerprint = fingerprint
            try:
                action()
            except Exception as error:
                scope.capture_exception(error)
        return self._received()

    def message(self, text: str) -> dict[str, Any]:
        with sentry_sdk.new_scope() as scope:
            scope.set_client(self.client)
            scope.capture_message(text)
        return self._received()


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    capture = Sdk()
    yield capture
    capture.client.close()


def parse_quantity(raw: str) -> int:
    return int(raw)


def checkout() -> int:
    return parse_quantity("abc") + 1


def refund() -> int:
    return -parse_quantity("abc")


def load_setting(raw: str, chained: bool) -> None:
    try:
        int(raw)
    except ValueError as error:
        raise LookupError(f"bad setting {raw}") from (error if chained else None)


def grouping_hash(event: dict[str, Any]) -> str:
    return compute_grouping(event).hash


# --- real SDK events --------------------------------------------------------------------------------


def test_same_exception_from_two_call_sites_is_two_issues(sdk: Sdk) -> None:
    from_checkout = compute_grouping(sdk.exception(checkout))
    from_refund = compute_grouping(sdk.exception(refund))
    assert from_checkout.variant == from_refund.variant == "stacktrace"
    assert from_checkout.hash != from_refund.hash


def test_same_call_site_with_different_values_is_one_issue(sdk: Sdk) -> None:
    events = [sdk.exception(lambda: parse_quantity(raw)) for raw in ("abc", "xyz")]  # noqa: B023
    assert events[0]["exception"]["values"][-1]["value"] != events[1]["exception"]["values"][-1]["value"]
    assert grouping_hash(events[0]) == grouping_hash(events[1])


def test_different_exception_types_from_one_call_site_are_two_issues(sdk: Sdk) -> None:
    def fail(kind: type[Exception]) -> None:
        raise kind("boom")

    assert grouping_hash(sdk.exception(lambda: fail(ValueError))) != grouping_hash(
        sdk.exception(lambda: fail(TypeError))
    )


def test_chained_exception_differs_from_the_same_exception_alone(sdk: Sdk) -> None:
    chained = sdk.exception(lambda: load_setting("abc", chained=True))
    alone = sdk.exception(lambda: load_setting("abc", chained=False))
    assert [v["type"] for v in chained["exception"]["values"]] == ["ValueError", "LookupError"]
    assert [v["type"] for v in alone["exception"]["values"]] == ["LookupError"]
    grouping = compute_grouping(chained)
    assert grouping.hash != grouping_hash(alone)
    assert "type: ValueError" in grouping.components
    assert "type: LookupError" in grouping.components


def test_default_fingerprint_with_extra_parts_splits_by_those_parts(sdk: Sdk) -> None:
    tenant_a = sdk.exception(checkout, fingerprint=["{{ default }}", "tenant-a"])
    tenant_b = sdk.exception(checkout, fingerprint=["{{ default }}", "tenant-b"])
    plain = sdk.exception(checkout)
    assert compute_grouping(tenant_a).variant == "fingerprint"
    assert len({grouping_hash(tenant_a), grouping_hash(tenant_b), grouping_hash(plain)}) == 3
    assert compute_grouping(tenant_a).components[:-1] == compute_grouping(plain).components


def test_custom_fingerprint_merges_call_sites(sdk: Sdk) -> None:
    first = sdk.exception(checkout, fingerprint=["my-group"])
    second = sdk.exception(refund, fingerprint=["my-group"])
    assert grouping_hash(first) == grouping_hash(second)
    assert compute_grouping(first).components == ["fingerprint: my-group"]


def test_fingerprint_of_only_default_is_the_default_grouping(sdk: Sdk) -> None:
    explicit = sdk.exception(checkout, fingerprint=["{{default}}"])
    assert compute_grouping(explicit) == compute_grouping(sdk.exception(checkout))


def test_messages_differing_only_in_parameters_are_one_issue(sdk: Sdk) -> None:
    first = sdk.message("Order 1234 failed for bob@example.com")
    second = sdk.message("Order 98 failed for alice@example.org")
    grouping = compute_grouping(first)
    assert grouping.variant == "message"
    assert grouping.components == ["message: Order <int> failed for <email>"]
    assert grouping.hash == grouping_hash(second)


def test_line_numbers_do_not_change_the_hash(sdk: Sdk) -> None:
    event = sdk.exception(checkout)
    moved = copy.deepcopy(event)
    for value in moved["exception"]["values"]:
        for frame in value["stacktrace"]["frames"]:
            frame["lineno"] += 40
            frame["colno"] = 3
    assert grouping_hash(event) == grouping_hash(moved)


def test_titles_and_culprits_of_real_events(sdk: Sdk) -> None:
    error = sdk.exception(checkout)
    assert event_title(error) == "ValueError: invalid literal for int() with base 10: 'abc'"
    assert event_culprit(error) == f"{__name__} in parse_quantity"
    metadata = event_metadata(error)
    assert metadata["type"] == "ValueError"
    assert metadata["function"] == "parse_quantity"
    assert metadata["filename"].endswith("test_grouping.py")
    assert metadata["in_app_frame_count"] >= 2
    message = sdk.message("Disk almost full\nsecond line")
    assert event_title(message) == "Disk almost full"
    assert event_culprit(message) == ""


# --- precedence and frame rules, on hand-written events ----------------------------------------------


def frame(module: str, function: str, context: str | None = None, **extra: Any) -> dict[str, Any]:
    built = {"module": module, "function": function, "lineno": 1, **extra}
    if context is not None:
        built["context_line"] = context
    return built


def error_event(
    *frames: dict[str, Any], kind: str = "ValueError", value: str = "bad", **extra: Any
) -> dict[str, Any]:
    raw = {"exception": {"values": [{"type": kind, "value": value, "stacktrace": {"frames": list(frames)}}]}}
    return normalize_event({**raw, **extra}, received_at=RECEIVED_AT)


def test_only_in_app_frames_contribute_when_some_are_in_app() -> None:
    event = error_event(
        frame("django.core", "handle", in_app=False),
        frame("shop.views", "checkout", "total = price(cart)", in_app=True),
        frame("decimal", "convert", in_app=False),
    )
    assert compute_grouping(event).components == [
        "type: ValueError",
        "frame: shop.views in checkout | total = price(cart)",
    ]


def test_all_frames_contribute_when_none_is_in_app_or_none_is_marked() -> None:
    frames = [frame("lib.a", "f"), frame("lib.b", "g")]
    unmarked = error_event(*frames)
    system_only = error_event(*[{**f, "in_app": False} for f in frames])
    expected = ["type: ValueError", "frame: lib.a in f", "frame: lib.b in g"]
    assert compute_grouping(unmarked).components == expected
    assert compute_grouping(system_only).components == expected


def test_value_contributes_only_without_frames() -> None:
    with_frames = [error_event(frame("shop", "pay"), value=v) for v in ("card 1 declined", "timeout")]
    assert grouping_hash(with_frames[0]) == grouping_hash(with_frames[1])
    no_frames = normalize_event(
        {"exception": {"type": "ValueError", "value": "user 42 not found"}}, received_at=RECEIVED_AT
    )
    grouping = compute_grouping(no_frames)
    assert grouping.variant == "exception"
    assert grouping.components == ["type: ValueError", "value: user <int> not found"]


def test_direct_recursion_counts_once() -> None:
    deep = error_event(*[frame("app", "walk", "return walk(node.child)")] * 50, frame("app", "leaf"))
    shallow = error_event(*[frame("app", "walk", "return walk(node.child)")] * 3, frame("app", "leaf"))
    assert grouping_hash(deep) == grouping_hash(shallow)


def test_context_line_whitespace_is_collapsed_and_capped() -> None:
    spaced = error_event(frame("app", "f", "   x  =   1  "))
    tight = error_event(frame("app", "f", "x = 1"))
    assert grouping_hash(spaced) == grouping_hash(tight)
    long_line = compute_grouping(error_event(frame("app", "f", "y" * 500))).components[-1]
    assert long_line == "frame: app in f | " + "y" * 120


def test_memory_addresses_and_hashes_leave_module_names() -> None:
    first = error_event(frame("com.shop.Cart$$Lambda$123/0x0000000800c02a00", "apply"))
    second = error_event(frame("com.shop.Cart$$Lambda$77/0x0000000800c0ff00", "apply"))
    assert grouping_hash(first) == grouping_hash(second)
    reflective = [error_event(frame(f"jdk.GeneratedMethodAccessor{n}", "invoke")) for n in (1, 99)]
    assert grouping_hash(reflective[0]) == grouping_hash(reflective[1])


def test_javascript_frames_without_module_use_a_cleaned_filename() -> None:
    def js_event(filename: str) -> dict[str, Any]:
        raw_frame = {"filename": filename, "function": "onClick", "lineno": 1, "colno": 200}
        return error_event(raw_frame, kind="TypeError", platform="javascript")

    first = js_event("https://cdn.example.com/static/main.3f2a1b9c.js?v=12#x")
    second = js_event("https://staging.example.com/static/main.77e0aa21.js?v=13")
    assert grouping_hash(first) == grouping_hash(second)
    assert compute_grouping(first).components[-1] == "frame: /static/main..js in onClick"
    assert event_culprit(first) == "https://cdn.example.com/static/main.3f2a1b9c.js in onClick"


def test_message_groups_by_template_when_params_were_sent() -> None:
    def log(user: str) -> dict[str, Any]:
        entry = {"message": "User %s logged in", "params": [user]}
        return normalize_event({"logentry": entry}, received_at=RECEIVED_AT)

    assert compute_grouping(log("bob")).components == ["message: User %s logged in"]
    assert grouping_hash(log("bob")) == grouping_hash(log("alice"))


def test_message_with_attached_stacktrace_groups_by_frames() -> None:
    event = normalize_event(
        {
            "message": "slow",
            "threads": {"values": [{"current": True, "stacktrace": {"frames": [frame("app", "run")]}}]},
        },
        received_at=RECEIVED_AT,
    )
    grouping = compute_grouping(event)
    assert grouping.variant == "stacktrace"
    assert grouping.components == ["frame: app in run"]


def test_synthetic_exception_types_do_not_contribute() -> None:
    def native(kind: str) -> dict[str, Any]:
        value = {"type": kind, "mechanism": {"type": "signalhandler", "synthetic": True}}
        value["stacktrace"] = {"frames": [{"function": "crash", "package": "app"}]}
        return normalize_event({"exception": [value]}, received_at=RECEIVED_AT)

    assert grouping_hash(native("SIGSEGV")) == grouping_hash(native("SIGBUS"))


def test_event_without_anything_uses_the_fallback() -> None:
    grouping = compute_grouping(normalize_event({}, received_at=RECEIVED_AT))
    assert grouping.variant == "fallback"
    assert grouping.components == ["<no grouping information>"]


def test_fingerprint_variables_are_resolved() -> None:
    event = error_event(
        frame("shop.views", "checkout", in_app=True),
        kind="KeyError",
        transaction="/cart",
        level="warning",
        tags={"tenant": "acme"},
        fingerprint=[
            "{{ transaction }}",
            "{{ type }}",
            "{{ function }}",
            "{{ module }}",
            "{{ level }}",
            "{{ tags.tenant }}",
            "{{ tags.missing }}",
            "{{ unknown }}",
        ],
    )
    assert compute_grouping(event).components == [
        "fingerprint: /cart",
        "fingerprint: KeyError",
        "fingerprint: checkout",
        "fingerprint: shop.views",
        "fingerprint: warning",
        "fingerprint: acme",
        "fingerprint: <no-tags.missing>",
        "fingerprint: {{ unknown }}",
    ]


def test_hash_is_stable_across_processes_and_releases() -> None:
    # A changed value here splits every existing issue: bump GROUPING_CONFIG instead.
    event = error_event(frame("shop.views", "checkout", "total = price(cart)"))
    grouping = compute_grouping(event)
    assert grouping == Grouping(
        hash="d00e6d40437b22f965cb3305b5a3f524",
        variant="stacktrace",
        components=["type: ValueError", "frame: shop.views in checkout | total = price(cart)"],
    )
    assert GROUPING_CONFIG == "watchkeeper:2026-11"


# --- titles, culprits, metadata -------------------------------------------------------------------------


def test_title_of_an_exception_truncates_the_value() -> None:
    event = error_event(kind="ValueError", value="x" * 300 + "\nmore")
    title = event_title(event)
    assert title.startswith("ValueError: xxx")
    assert title.endswith("…")
    assert len(title) == len("ValueError: ") + 100


def test_title_falls_back_to_type_message_and_unlabeled() -> None:
    assert event_title(error_event(value="")) == "ValueError"
    assert event_title(normalize_event({"message": "  hello\nworld"}, received_at=RECEIVED_AT)) == "hello"
    assert event_title(normalize_event({}, received_at=RECEIVED_AT)) == "<unlabeled event>"


def test_title_and_culprit_of_a_transaction() -> None:
    event = normalize_event(
        {"transaction": "/api/orders/{id}"}, received_at=RECEIVED_AT, event_type="transaction"
    )
    assert event_title(event) == "/api/orders/{id}"
    assert event_culprit(event) == "/api/orders/{id}"


def test_culprit_prefers_explicit_then_newest_in_app_frame() -> None:
    frames = [frame("shop.views", "checkout", in_app=True), frame("decimal", "quantize", in_app=False)]
    assert event_culprit(error_event(*frames)) == "shop.views in checkout"
    assert event_culprit(error_event(*frames, culprit="sent by sdk")) == "sent by sdk"
    system = [{**f, "in_app": False} for f in frames]
    assert event_culprit(error_event(*system)) == "decimal in quantize"


def test_metadata_holds_only_known_keys() -> None:
    assert event_metadata(normalize_event({"message": "hi"}, received_at=RECEIVED_AT)) == {}
    event = error_event(
        frame("shop", "pay", in_app=True, filename="shop.py"), frame("lib", "x", in_app=False)
    )
    assert event_metadata(event) == {
        "type": "ValueError",
        "value": "bad",
        "filename": "shop.py",
        "function": "pay",
        "in_app_frame_count": 1,
    }


# --- parameterize ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail bob.smith+tag@example.co.uk now", "mail <email> now"),
        ("GET https://api.example.com/v1/users?id=3 failed.", "GET <url> failed."),
        ("see http://bob@example.com/x", "see <url>"),
        ("from 10.0.0.1:5432", "from <ip>:<int>"),
        ("peer fe80::1 and 2001:db8::8a2e:370:7334", "peer <ip> and <ip>"),
        ("mapped ::ffff:192.0.2.1", "mapped <ip>"),
        ("id 550e8400-e29b-41d4-a716-446655440000", "id <uuid>"),
        ("sha 3f786850e387550fdab836ed7e6dc881de23001b", "sha <hex>"),
        ("md5 d41d8cd98f00b204e9800998ecf8427e", "md5 <hex>"),
        ("ptr 0x7ffeefbff5c8", "ptr <hex>"),
        ("at 2024-01-02T03:04:05.123Z", "at <date>"),
        ("on 2024-01-02 12:00:00+02:00", "on <date>"),
        ("at 12:30:45", "at <date>"),
        ("on 01/02/2024", "on <date>"),
        ("on Mon, 02 Jan 2006 15:04:05 -0700", "on <date>"),
        ("on Jan 2, 2024", "on <date>"),
        ("on 2 January 2024", "on <date>"),
        ("log [02/Jan/2006:15:04:05 +0000]", "log [<date>]"),
        ("took 3.5s", "took <duration>"),
        ("took 200ms then 2 seconds", "took <duration> then <duration>"),
        ("ratio 0.75", "ratio <float>"),
        ("Order 1234 failed", "Order <int> failed"),
        ("offset -5", "offset <int>"),
        ("user 'bob' not in \"admins\"", "user <quoted> not in <quoted>"),
        ("flag True or false", "flag <bool> or <bool>"),
    ],
)
def test_parameterize_replaces_variable_parts(text: str, expected: str) -> None:
    assert parameterize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3",
        "user42 logged in",
        "can't find it",
        "deadbeef is a word",
        "std::vector and Foo::bar",
        "snake_case_123",
        "",
    ],
)
def test_parameterize_leaves_ordinary_words_alone(text: str) -> None:
    assert parameterize(text) == text


@pytest.mark.parametrize("unit", ["a.", "1.", "1:", "a-", "a@", "'", "x1 ", "ab12:", "0x", "1 '", "::1"])
def test_parameterize_runs_in_linear_time(unit: str) -> None:
    text = unit * (200_000 // len(unit))
    started = time.perf_counter()
    parameterize(text)
    assert time.perf_counter() - started < 2.0
