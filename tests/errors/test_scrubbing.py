import copy
import doctest
import time
import warnings
from typing import Any

import orjson
import pytest
import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope
from sentry_sdk.scrubber import EventScrubber
from sentry_sdk.transport import Transport

from watchkeeper.errors import pii_patterns, scrubbing
from watchkeeper.errors.scrubbing import ScrubbingRules, anonymize_ip, scrub_event

FILTERED = "[Filtered]"
GENESIS_ADDRESS = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
GENESIS_LOOKALIKE = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"  # last character changed: bad checksum
P2SH_ADDRESS = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"
BECH32_ADDRESS = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
ETH_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"
VISA = "4111 1111 1111 1111"


def scrub(event: dict[str, Any], **rules: Any) -> dict[str, Any]:
    return scrub_event(event, ScrubbingRules(**rules))


def frame_event(variables: dict[str, Any]) -> dict[str, Any]:
    frame = {"function": "charge", "vars": variables}
    return {
        "exception": {"values": [{"type": "ValueError", "value": "boom", "stacktrace": {"frames": [frame]}}]}
    }


def frame_vars(event: dict[str, Any]) -> Any:
    return event["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]


def scrub_text_in_extra(text: str, **rules: Any) -> Any:
    return scrub({"extra": {"note": text}}, **rules)["extra"]["note"]


# -- frame variables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "PASSWORD",
        "passwd",
        "mysql_pwd",
        "client_secret",
        "passphrase",
        "access_token",
        "refreshToken",
        "api_key",
        "apiKey",
        "x-api-key",
        "credentials",
        "private_key",
        "sessionid",
        "session_id",
        "csrftoken",
        "_xsrf",
        "set-cookie",
        "card_number",
        "creditCard",
        "cc_number",
        "cvv",
        "ssn",
    ],
)
def test_it_filters_sensitive_keys_in_frame_vars(key: str) -> None:
    event = scrub(frame_event({key: "'hunter2'", "quantity": "3"}))

    assert frame_vars(event) == {key: FILTERED, "quantity": "3"}


def test_it_filters_password_in_frame_vars() -> None:
    event = scrub(frame_event({"password": "'hunter2'"}))

    assert frame_vars(event)["password"] == FILTERED


def test_it_filters_the_whole_value_under_a_sensitive_key_whatever_its_type() -> None:
    event = scrub(frame_event({"secrets": {"a": "1"}, "tokens": ["x", "y"], "pin_token": 1234, "auth": True}))

    assert frame_vars(event) == {
        "secrets": FILTERED,
        "tokens": FILTERED,
        "pin_token": FILTERED,
        "auth": FILTERED,
    }


def test_it_keeps_a_none_value_under_a_sensitive_key() -> None:
    event = scrub(frame_event({"password": None}))

    assert frame_vars(event) == {"password": None}


def test_it_filters_sensitive_keys_nested_in_frame_vars() -> None:
    event = scrub(frame_event({"config": {"db": {"url": "x", "password": "p"}, "hosts": [{"token": "t"}]}}))

    assert frame_vars(event) == {
        "config": {"db": {"url": "x", "password": FILTERED}, "hosts": [{"token": FILTERED}]}
    }


def test_it_replaces_emails_and_cards_inside_frame_var_strings() -> None:
    event = scrub(
        frame_event({"who": "'bob@example.com'", "card": f"'{VISA}'", "msg": "'hi bob@example.com!'"})
    )

    assert frame_vars(event) == {"who": "'[email]'", "card": "'[creditcard]'", "msg": "'hi [email]!'"}


def test_it_scrubs_vars_in_thread_and_top_level_stacktraces() -> None:
    event = {
        "threads": {"values": [{"stacktrace": {"frames": [{"vars": {"token": "t", "e": "a@b.example"}}]}}]},
        "stacktrace": {"frames": [{"vars": {"secret": "s"}}]},
    }

    scrub(event)

    assert event["threads"]["values"][0]["stacktrace"]["frames"][0]["vars"] == {
        "token": FILTERED,
        "e": "[email]",
    }
    assert event["stacktrace"]["frames"][0]["vars"] == {"secret": FILTERED}


def test_it_accepts_an_exception_sent_as_a_bare_list() -> None:
    event = {"exception": [{"stacktrace": {"frames": [{"vars": {"password": "p"}}]}}]}

    scrub(event)

    assert event["exception"][0]["stacktrace"]["frames"][0]["vars"] == {"password": FILTERED}


@pytest.mark.parametrize(
    "key", ["author", "author_id", "authority", "authored_at", "unauthorized", "authenticated"]
)
def test_it_keeps_keys_that_merely_contain_auth(key: str) -> None:
    event = scrub(frame_event({key: "'Jane'"}))

    assert frame_vars(event) == {key: "'Jane'"}


@pytest.mark.parametrize(
    "key",
    ["auth", "Auth", "x-auth-token", "basic_auth", "auth_user", "authToken", "HTTP_AUTHORIZATION", "oauth"],
)
def test_it_filters_auth_as_a_word(key: str) -> None:
    event = scrub(frame_event({key: "'value'"}))

    assert frame_vars(event) == {key: FILTERED}


def test_it_leaves_source_context_alone() -> None:
    event = frame_event({})
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][0]
    frame["context_line"] = '    notify("ops@example.com")'

    scrub(event)

    assert frame["context_line"] == '    notify("ops@example.com")'


def test_it_scrubs_the_exception_value_shown_as_the_title_but_not_the_type() -> None:
    event = frame_event({})
    event["exception"]["values"][0]["value"] = "no user bob@example.com with card 4111111111111111"

    scrub(event)

    assert event["exception"]["values"][0]["value"] == "no user [email] with card [creditcard]"
    assert event["exception"]["values"][0]["type"] == "ValueError"


# -- request ---------------------------------------------------------------------------------


def test_it_filters_a_json_body_sent_as_a_dict() -> None:
    event = scrub({"request": {"data": {"user": {"email": "bob@example.com", "password": "p"}, "qty": 2}}})

    assert event["request"]["data"] == {"user": {"email": "[email]", "password": FILTERED}, "qty": 2}


def test_it_filters_a_json_body_sent_as_a_string_and_keeps_it_a_string() -> None:
    body = '{"password": "hunter2", "note": "call bob@example.com", "items": [1, 2]}'

    event = scrub({"request": {"data": body}})

    assert orjson.loads(event["request"]["data"]) == {
        "password": FILTERED,
        "note": "call [email]",
        "items": [1, 2],
    }


def test_it_leaves_a_clean_json_string_body_byte_for_byte() -> None:
    body = '{ "quantity": 2,  "product": "widget" }'

    event = scrub({"request": {"data": body}})

    assert event["request"]["data"] == body


def test_it_filters_a_form_body_string_and_keeps_it_form_encoded() -> None:
    event = scrub({"request": {"data": "user=bob&password=hunter2&contact=bob%40example.com&next=%2Fhome"}})

    assert event["request"]["data"] == "user=bob&password=[Filtered]&contact=[email]&next=%2Fhome"


def test_it_applies_value_patterns_to_a_plain_text_body() -> None:
    event = scrub({"request": {"data": "Hello, please charge 4111 1111 1111 1111 and mail bob@example.com"}})

    assert event["request"]["data"] == "Hello, please charge [creditcard] and mail [email]"


def test_it_applies_value_patterns_to_a_body_that_is_not_valid_json() -> None:
    event = scrub({"request": {"data": '{"email": "bob@example.com", truncated'}})

    assert event["request"]["data"] == '{"email": "[email]", truncated'


def test_it_filters_a_query_string_sent_as_a_string() -> None:
    event = scrub({"request": {"query_string": "page=2&api_key=abc123&q=bob%40example.com"}})

    assert event["request"]["query_string"] == "page=2&api_key=[Filtered]&q=[email]"


def test_it_filters_a_query_string_sent_as_pairs() -> None:
    event = scrub({"request": {"query_string": [["page", "2"], ["token", "abc"], ["q", "bob@example.com"]]}})

    assert event["request"]["query_string"] == [["page", "2"], ["token", FILTERED], ["q", "[email]"]]


def test_it_filters_a_query_string_sent_as_a_dict() -> None:
    event = scrub({"request": {"query_string": {"page": "2", "access_token": "abc"}}})

    assert event["request"]["query_string"] == {"page": "2", "access_token": FILTERED}


@pytest.mark.parametrize(
    ("cookies", "scrubbed"),
    [
        ("sessionid=abc; theme=dark", "sessionid=[Filtered]; theme=[Filtered]"),
        ({"sessionid": "abc", "theme": "dark"}, {"sessionid": FILTERED, "theme": FILTERED}),
        ([["sessionid", "abc"]], [["sessionid", FILTERED]]),
    ],
)
def test_it_filters_every_cookie_value(cookies: Any, scrubbed: Any) -> None:
    event = scrub({"request": {"cookies": cookies}})

    assert event["request"]["cookies"] == scrubbed


def test_a_safe_field_keeps_its_cookie_and_a_sensitive_one_filters_it_without_scrub_data() -> None:
    cookies = "theme=dark; iban=DE89370400440532013000; peer=203.0.113.57"

    kept = scrub({"request": {"cookies": cookies}}, safe_fields=("theme",))
    alone = scrub({"request": {"cookies": cookies}}, enabled=False, extra_fields=("iban",))

    assert kept["request"]["cookies"] == "theme=dark; iban=[Filtered]; peer=[Filtered]"
    assert alone["request"]["cookies"] == "theme=dark; iban=[Filtered]; peer=203.0.113.0"


def test_it_keeps_empty_cookies_empty() -> None:
    event = scrub({"request": {"cookies": {}}})

    assert event["request"]["cookies"] == {}


def test_it_filters_sensitive_headers_sent_as_a_dict() -> None:
    headers = {
        "Authorization": "Basic Ym9iOmh1bnRlcjI=",
        "Proxy-Authorization": "Bearer abc",
        "Cookie": "sessionid=abc",
        "Set-Cookie": "sessionid=abc; HttpOnly",
        "X-Api-Key": "k-123",
        "X-Auth-Token": "t-123",
        "Accept": "application/json",
        "From": "bob@example.com",
    }

    event = scrub({"request": {"headers": headers}})

    assert event["request"]["headers"] == {
        "Authorization": FILTERED,
        "Proxy-Authorization": FILTERED,
        "Cookie": FILTERED,
        "Set-Cookie": FILTERED,
        "X-Api-Key": FILTERED,
        "X-Auth-Token": FILTERED,
        "Accept": "application/json",
        "From": "[email]",
    }


def test_it_filters_sensitive_headers_sent_as_pairs() -> None:
    headers = [["authorization", "Bearer abc"], ["cookie", "a=b"], ["Accept", "text/html"]]

    event = scrub({"request": {"headers": headers}})

    assert event["request"]["headers"] == [
        ["authorization", FILTERED],
        ["cookie", FILTERED],
        ["Accept", "text/html"],
    ]


def test_it_anonymises_forwarding_headers() -> None:
    headers = {
        "X-Forwarded-For": "203.0.113.57, 2001:db8:85a3:8d3:1319:8a2e:370:7348, 10.0.0.1",
        "X-Real-Ip": "198.51.100.23",
        "CF-Connecting-IP": "198.51.100.24",
        "Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https, for=192.0.2.60;by=203.0.113.43',
    }

    event = scrub({"request": {"headers": headers}})

    assert event["request"]["headers"] == {
        "X-Forwarded-For": "203.0.113.0, 2001:db8:85a3::, 10.0.0.0",
        "X-Real-Ip": "198.51.100.0",
        "CF-Connecting-IP": "198.51.100.0",
        "Forwarded": 'for="[2001:db8:cafe::]:4711";proto=https, for=192.0.2.0;by=203.0.113.0',
    }


def test_it_anonymises_forwarding_headers_sent_as_pairs() -> None:
    event = scrub({"request": {"headers": [["x-forwarded-for", "203.0.113.57:5511"]]}})

    assert event["request"]["headers"] == [["x-forwarded-for", "203.0.113.0:5511"]]


def test_it_anonymises_remote_addr_and_filters_auth_in_env() -> None:
    env = {"REMOTE_ADDR": "203.0.113.57", "HTTP_AUTHORIZATION": "Bearer abc", "SERVER_PORT": "8000"}

    event = scrub({"request": {"env": env}})

    assert event["request"]["env"] == {
        "REMOTE_ADDR": "203.0.113.0",
        "HTTP_AUTHORIZATION": FILTERED,
        "SERVER_PORT": "8000",
    }


def test_it_filters_credentials_and_secrets_in_the_request_url() -> None:
    event = scrub({"request": {"url": "https://bob:hunter2@shop.example.com/cart?token=abc&page=2#top"}})

    assert (
        event["request"]["url"] == "https://bob:[Filtered]@shop.example.com/cart?token=[Filtered]&page=2#top"
    )


# -- breadcrumbs, extra, contexts, tags, log messages, user ---------------------------------


def test_it_scrubs_breadcrumb_data_by_key_and_by_value() -> None:
    crumb = {"category": "http", "data": {"url": "/login", "password": "p", "to": "bob@example.com"}}

    event = scrub({"breadcrumbs": {"values": [crumb]}})

    assert event["breadcrumbs"]["values"][0]["data"] == {
        "url": "/login",
        "password": FILTERED,
        "to": "[email]",
    }


def test_it_replaces_an_email_in_a_sql_breadcrumb_message() -> None:
    crumb = {"category": "query", "message": "SELECT * FROM users WHERE email = 'bob@example.com'"}

    event = scrub({"breadcrumbs": {"values": [crumb]}})

    assert event["breadcrumbs"]["values"][0]["message"] == "SELECT * FROM users WHERE email = '[email]'"


def test_it_accepts_breadcrumbs_sent_as_a_bare_list() -> None:
    event = scrub({"breadcrumbs": [{"message": "card 4111111111111111", "data": {"token": "t"}}]})

    assert event["breadcrumbs"] == [{"message": "card [creditcard]", "data": {"token": FILTERED}}]


def test_it_scrubs_extra() -> None:
    event = scrub({"extra": {"api_key": "k", "order": {"buyer": "bob@example.com", "id": 42}, "argv": ["a"]}})

    assert event["extra"] == {"api_key": FILTERED, "order": {"buyer": "[email]", "id": 42}, "argv": ["a"]}


def test_it_scrubs_custom_contexts_by_key_and_value() -> None:
    event = scrub({"contexts": {"payment": {"card": VISA, "provider_secret": "s", "amount": 10}}})

    assert event["contexts"]["payment"] == {"card": "[creditcard]", "provider_secret": FILTERED, "amount": 10}


def test_it_only_checks_key_names_in_sdk_metadata_contexts() -> None:
    contexts = {
        "os": {"name": "Linux", "kernel_version": "6.1.0 built by builder@example.com", "token": "t"},
        "device": {"type": "device", "model_id": "4111111111111111"},
        "gpu": {"session": {"id": "x"}},
    }

    event = scrub({"contexts": copy.deepcopy(contexts)})

    assert event["contexts"] == {
        "os": {"name": "Linux", "kernel_version": "6.1.0 built by builder@example.com", "token": FILTERED},
        "device": {"type": "device", "model_id": "4111111111111111"},
        "gpu": {"session": FILTERED},
    }


def test_it_applies_value_patterns_to_tags_but_not_key_names() -> None:
    event = scrub({"tags": {"session_id": "abc", "customer": "bob@example.com", "level": "error"}})

    assert event["tags"] == {"session_id": "abc", "customer": "[email]", "level": "error"}


def test_it_applies_value_patterns_to_tags_sent_as_pairs() -> None:
    event = scrub({"tags": [["token_kind", "jwt"], ["customer", "bob@example.com"]]})

    assert event["tags"] == [["token_kind", "jwt"], ["customer", "[email]"]]


def test_it_scrubs_log_messages_and_their_params() -> None:
    event = {
        "logentry": {
            "message": "charging %s for %s",
            "params": ["bob@example.com", VISA],
            "formatted": f"charging bob@example.com for {VISA}",
        },
        "message": "plain message for bob@example.com",
    }

    scrub(event)

    assert event["logentry"] == {
        "message": "charging %s for %s",
        "params": ["[email]", "[creditcard]"],
        "formatted": "charging [email] for [creditcard]",
    }
    assert event["message"] == "plain message for [email]"


def test_it_scrubs_the_user_email_and_anonymises_the_user_ip() -> None:
    user = {"id": "42", "username": "bob", "email": "bob@example.com", "ip_address": "203.0.113.57"}

    event = scrub({"user": user})

    assert event["user"] == {
        "id": "42",
        "username": "bob",
        "email": "[email]",
        "ip_address": "203.0.113.0",
    }


def test_without_scrub_data_the_user_email_is_kept() -> None:
    event = scrub({"user": {"email": "bob@example.com"}}, enabled=False)

    assert event["user"] == {"email": "bob@example.com"}


def test_it_scrubs_user_data() -> None:
    event = scrub({"user": {"id": "42", "data": {"password_hint": "cat", "note": "bob@example.com"}}})

    assert event["user"]["data"] == {"password_hint": FILTERED, "note": "[email]"}


# -- value patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        VISA,
        "4111-1111-1111-1111",
        "4111111111111111",
        "5555555555554444",
        "3782 822463 10005",
        "378282246310005",
    ],
)
def test_it_replaces_luhn_valid_card_numbers(card: str) -> None:
    assert scrub_text_in_extra(f"paid with {card}.") == "paid with [creditcard]."


def test_it_replaces_a_card_number_sent_as_a_json_number() -> None:
    event = scrub({"extra": {"pan": 4111111111111111, "amount": 1999}})

    assert event["extra"] == {"pan": "[creditcard]", "amount": 1999}


@pytest.mark.parametrize("number", ["4000123412341230", "4111111111111112"])
def test_it_keeps_a_sixteen_digit_order_id_that_fails_luhn(number: str) -> None:
    assert scrub_text_in_extra(f"order {number}") == f"order {number}"
    assert scrub({"extra": {"order": int(number)}})["extra"]["order"] == int(number)


def test_it_keeps_millisecond_timestamps_even_when_they_pass_luhn() -> None:
    assert scrub_text_in_extra("at 1732355740124") == "at 1732355740124"
    assert scrub({"extra": {"ts": 1732355740124}})["extra"]["ts"] == 1732355740124


def test_it_keeps_digits_embedded_in_longer_tokens() -> None:
    assert scrub_text_in_extra("ref A4111111111111111 and 4111111111111111x") == (
        "ref A4111111111111111 and 4111111111111111x"
    )


def test_it_replaces_an_email_inside_a_sentence() -> None:
    assert scrub_text_in_extra("user bob@example.com logged in") == "user [email] logged in"


@pytest.mark.parametrize(
    "address", [GENESIS_ADDRESS, P2SH_ADDRESS, BECH32_ADDRESS, BECH32_ADDRESS.upper(), ETH_ADDRESS]
)
def test_it_replaces_crypto_wallet_addresses(address: str) -> None:
    assert scrub_text_in_extra(f"send to {address} now") == "send to [wallet] now"


@pytest.mark.parametrize(
    "text",
    [
        GENESIS_LOOKALIKE,
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  # bech32 with a broken checksum
        "1Ab2Cd3Ef4Gh5Jk6Lm7Np8Qr9St2Uv3Wx",  # base58 alphabet, no checksum
        "<app.views.OrderView object at 0x7f3a2c1b9e50>",
        "sha1 0x52908400098527886e0f7030069857d2e4169ee7aa",  # longer than an address
    ],
)
def test_it_keeps_wallet_lookalikes(text: str) -> None:
    assert scrub_text_in_extra(text) == text


def test_it_filters_bearer_tokens_but_not_the_word_bearer() -> None:
    assert scrub_text_in_extra("sent Authorization: Bearer eyJhbGciOi.J9.abc") == (
        "sent Authorization: Bearer [Filtered]"
    )
    assert scrub_text_in_extra("the bearer of bad news") == "the bearer of bad news"


def test_it_filters_private_key_blocks() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1x2\n-----END RSA PRIVATE KEY-----"

    assert scrub_text_in_extra(f"key={pem}\nrest") == "key=[Filtered]\nrest"
    assert scrub_text_in_extra("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgk") == FILTERED


def test_it_filters_passwords_in_connection_strings() -> None:
    assert scrub_text_in_extra("postgres://app:s3cret@db.example.com:5432/shop") == (
        "postgres://app:[Filtered]@db.example.com:5432/shop"
    )


def test_it_anonymises_ip_addresses_inside_strings() -> None:
    text = "from 203.0.113.57:443 via 2001:db8:85a3:8d3:1319:8a2e:370:7348 at 12:30:45"

    assert scrub_text_in_extra(text) == "from 203.0.113.0:443 via 2001:db8:85a3:: at 12:30:45"


def test_it_keeps_ip_lookalikes_inside_strings() -> None:
    text = "v1.2.3.4 1.2.3.4.5 999.1.1.1 00:1a:2b:3c:4d:5e 2024-11-23T10:00:00Z"

    assert scrub_text_in_extra(text) == text


# -- anonymize_ip ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.57", "203.0.113.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("203.0.113.57:8080", "203.0.113.0:8080"),
        ("[2001:db8:85a3:8d3:1319:8a2e:370:7348]:443", "[2001:db8:85a3::]:443"),
        ("203.0.113.57, 198.51.100.2,10.0.0.1", "203.0.113.0, 198.51.100.0,10.0.0.0"),
        ("::ffff:203.0.113.57", "::ffff:203.0.113.0"),
        ("::1", "::"),
        ("unknown", "unknown"),
        ("203.0.113.57, unknown", "203.0.113.0, unknown"),
        ("999.1.1.1", "999.1.1.1"),
        ("{{auto}}", "{{auto}}"),
        ("", ""),
    ],
)
def test_anonymize_ip(value: str, expected: str) -> None:
    assert anonymize_ip(value) == expected


# -- rules -----------------------------------------------------------------------------------


def test_extra_fields_add_sensitive_key_substrings_case_insensitively() -> None:
    event = scrub(frame_event({"customer_IBAN": "DE89", "iban": "DE89", "name": "x"}), extra_fields=("Iban",))

    assert frame_vars(event) == {"customer_IBAN": FILTERED, "iban": FILTERED, "name": "x"}


def test_safe_fields_win_over_key_names_and_value_patterns() -> None:
    event = scrub(
        frame_event(
            {"session_id": "abc", "contact_email": "bob@example.com", "other_email": "bob@example.com"}
        ),
        safe_fields=("Session_ID", "contact_email"),
    )

    assert frame_vars(event) == {
        "session_id": "abc",
        "contact_email": "bob@example.com",
        "other_email": "[email]",
    }


def test_safe_fields_match_whole_key_names_only() -> None:
    event = scrub(frame_event({"session_id": "abc", "user_session_id": "def"}), safe_fields=("session_id",))

    assert frame_vars(event) == {"session_id": "abc", "user_session_id": FILTERED}


def test_safe_fields_apply_to_headers_query_strings_and_ip_fields() -> None:
    event = {
        "request": {
            "headers": {"Authorization": "Bearer abc", "X-Forwarded-For": "203.0.113.57"},
            "query_string": "token=abc",
        },
        "user": {"ip_address": "203.0.113.57"},
    }

    scrub(event, safe_fields=("authorization", "token", "x-forwarded-for", "ip_address"))

    assert event["request"] == {
        "headers": {"Authorization": "Bearer abc", "X-Forwarded-For": "203.0.113.57"},
        "query_string": "token=abc",
    }
    assert event["user"] == {"ip_address": "203.0.113.57"}


def full_event() -> dict[str, Any]:
    event = frame_event({"password": "p", "email": "bob@example.com", "peer": "203.0.113.57"})
    event.update(
        request={
            "headers": {"Authorization": "Bearer abc", "X-Forwarded-For": "203.0.113.57"},
            "cookies": "sessionid=abc",
            "data": {"token": "t"},
            "env": {"REMOTE_ADDR": "203.0.113.57"},
        },
        user={"ip_address": "2001:db8:85a3:8d3:1319:8a2e:370:7348"},
        extra={"secret": "s"},
        breadcrumbs={"values": [{"message": "login bob@example.com from 203.0.113.57"}]},
    )
    return event


def test_without_scrub_data_the_ip_switch_still_anonymises_every_ip_address() -> None:
    event = scrub(full_event(), enabled=False)

    expected = full_event()
    expected["request"]["headers"]["X-Forwarded-For"] = "203.0.113.0"
    expected["request"]["env"]["REMOTE_ADDR"] = "203.0.113.0"
    expected["user"]["ip_address"] = "2001:db8:85a3::"
    expected["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]["peer"] = "203.0.113.0"
    expected["breadcrumbs"]["values"][0]["message"] = "login bob@example.com from 203.0.113.0"
    assert event == expected


def test_disabled_rules_without_ip_anonymisation_change_nothing() -> None:
    event = scrub(full_event(), enabled=False, scrub_ip_addresses=False)

    assert event == full_event()


def test_ip_anonymisation_can_be_switched_off_alone() -> None:
    event = scrub(full_event(), scrub_ip_addresses=False)

    assert frame_vars(event) == {"password": FILTERED, "email": "[email]", "peer": "203.0.113.57"}
    assert event["request"]["headers"] == {"Authorization": FILTERED, "X-Forwarded-For": "203.0.113.57"}
    assert event["user"]["ip_address"] == "2001:db8:85a3:8d3:1319:8a2e:370:7348"
    assert event["breadcrumbs"]["values"][0]["message"] == "login [email] from 203.0.113.57"


def test_default_rules_scrub_every_area_of_the_full_event() -> None:
    event = scrub(full_event())

    assert frame_vars(event) == {"password": FILTERED, "email": "[email]", "peer": "203.0.113.0"}
    assert event["request"] == {
        "headers": {"Authorization": FILTERED, "X-Forwarded-For": "203.0.113.0"},
        "cookies": "sessionid=[Filtered]",
        "data": {"token": FILTERED},
        "env": {"REMOTE_ADDR": "203.0.113.0"},
    }
    assert event["user"] == {"ip_address": "2001:db8:85a3::"}
    assert event["extra"] == {"secret": FILTERED}
    assert event["breadcrumbs"]["values"][0]["message"] == "login [email] from 203.0.113.0"


def test_scrub_event_mutates_in_place_and_returns_the_same_dict() -> None:
    event = {"extra": {"password": "p"}}

    assert scrub_event(event, ScrubbingRules()) is event
    assert event == {"extra": {"password": FILTERED}}


def test_rules_from_missing_settings_are_the_defaults() -> None:
    assert ScrubbingRules.from_settings(None) == ScrubbingRules()
    assert ScrubbingRules.from_settings({"unrelated": 1}) == ScrubbingRules()


def test_rules_from_settings_read_every_key() -> None:
    rules = ScrubbingRules.from_settings(
        {
            "scrub_data": False,
            "sensitive_fields": ["iban", " tax_id "],
            "safe_fields": ["session_id"],
            "scrub_ip_addresses": False,
        }
    )

    assert rules == ScrubbingRules(
        enabled=False, extra_fields=("iban", "tax_id"), safe_fields=("session_id",), scrub_ip_addresses=False
    )


@pytest.mark.parametrize(
    ("settings", "bad_key"),
    [
        ({"scrub_data": "yes"}, "scrub_data"),
        ({"scrub_ip_addresses": 1}, "scrub_ip_addresses"),
        ({"sensitive_fields": "iban"}, "sensitive_fields"),
        ({"sensitive_fields": ["iban", 3]}, "sensitive_fields"),
        ({"safe_fields": [""]}, "safe_fields"),
        ({"safe_fields": {"a": 1}}, "safe_fields"),
    ],
)
def test_rules_from_settings_reject_bad_types_naming_the_key(settings: dict[str, Any], bad_key: str) -> None:
    with pytest.raises(ValueError, match=bad_key):
        ScrubbingRules.from_settings(settings)


# -- robustness ------------------------------------------------------------------------------


def test_it_tolerates_unexpected_shapes() -> None:
    event: dict[str, Any] = {
        "exception": {
            "values": [None, "x", {"stacktrace": {"frames": [None, {"vars": ["a"]}, {"vars": None}]}}]
        },
        "threads": "nope",
        "breadcrumbs": {"values": [None, {"message": 3, "data": "bob@example.com"}]},
        "request": {"headers": [["a"], None, [1, 2], ["X-Api-Key", None]], "data": 12, "query_string": None},
        "contexts": {"os": "linux", "trace": {"type": ["x"]}},
        "tags": [None, ["a"], ["k", "bob@example.com"]],
        "user": {"ip_address": 12},
        "logentry": {"params": {"password": "p"}},
        "extra": "bob@example.com",
    }

    scrub(event)

    assert event["breadcrumbs"]["values"][1]["data"] == "[email]"
    assert event["tags"][2] == ["k", "[email]"]
    assert event["logentry"]["params"] == {"password": FILTERED}
    assert event["extra"] == "[email]"


def test_it_stops_descending_past_fifty_levels() -> None:
    deep: dict[str, Any] = {"password": "p"}
    for _ in range(200):
        deep = {"nested": deep}
    shallow: dict[str, Any] = {"password": "p"}
    for _ in range(10):
        shallow = {"nested": shallow}

    event = scrub({"extra": {"deep": deep, "shallow": shallow}})

    assert "[Filtered]" in orjson.dumps(event["extra"]["shallow"]).decode()
    assert '"password":"p"' in orjson.dumps(event["extra"]["deep"]).decode()


@pytest.mark.parametrize(
    "text",
    [
        "a" * 16384,
        "1" * 16384,
        "@" * 16384,
        "a@" * 8192,
        "1." * 8192,
        "1:" * 8192,
        "1 " * 8192,
        "x" * 16000 + "@example.com",
        "a." * 8000 + "@b",
        "bearer " * 2000,
        "-----BEGIN PRIVATE KEY-----" * 600,
        "://a:" * 3000 + "@",
    ],
)
def test_value_patterns_stay_fast_on_hostile_strings(text: str) -> None:
    started = time.perf_counter()
    scrub_text_in_extra(text)

    # Linear regexes take about a millisecond here; a catastrophic one would take minutes.
    assert time.perf_counter() - started < 0.5


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what a JSON parser hands us
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
emails_and_friends = st.sampled_from(
    ["bob@example.com", VISA, GENESIS_ADDRESS, "203.0.113.57", "Bearer abcdefghij", "password", "token"]
)


@settings(max_examples=200, deadline=None)
@given(
    value=json_values | emails_and_friends,
    key=st.text(max_size=12) | emails_and_friends,
    area=st.sampled_from(["vars", "extra", "data", "headers", "query", "crumb", "tags", "contexts"]),
)
def test_scrubbing_never_fails_and_is_idempotent(value: Any, key: str, area: str) -> None:
    payload = {key: value}
    event: dict[str, Any] = {
        "vars": frame_event(payload),
        "extra": {"extra": payload},
        "data": {"request": {"data": payload, "cookies": value}},
        "headers": {"request": {"headers": payload, "env": payload}},
        "query": {"request": {"query_string": [[key, value]]}},
        "crumb": {"breadcrumbs": {"values": [{"data": payload, "message": value}]}},
        "tags": {"tags": [[key, value]]},
        "contexts": {"contexts": {"os": payload, "custom": payload}},
    }[area]

    once = orjson.loads(orjson.dumps(scrub(event), option=orjson.OPT_NON_STR_KEYS))
    twice = orjson.loads(orjson.dumps(scrub(copy.deepcopy(once)), option=orjson.OPT_NON_STR_KEYS))

    assert twice == once


@pytest.mark.parametrize("module", [scrubbing, pii_patterns])
def test_docstring_examples_hold(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


# -- a real event from the real SDK ----------------------------------------------------------


class CapturingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def checkout(user: str) -> None:
    password = "hunter2"
    email = "bob@example.com"
    card = "4111 1111 1111 1111"
    raise ValueError(f"payment declined for {user}: {len(password)} {len(email)} {len(card)}")


def capture_with_real_sdk() -> dict[str, Any]:
    transport = CapturingTransport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # send_default_pii is deprecated in newer SDKs
        client = sentry_sdk.Client(
            dsn="http://key@127.0.0.1:9/1",
            transport=transport,
            include_local_variables=True,
            # Source lines are the application's code, which the scrubber leaves alone, and the
            # literals below sit in checkout()'s source.
            include_source_context=False,
            send_default_pii=True,
            default_integrations=False,
            # The SDK's own scrubber would already drop "password"; this test is about ours.
            event_scrubber=EventScrubber(denylist=[], pii_denylist=[]),
        )
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        try:
            checkout("bob")
        except ValueError as error:
            scope.capture_exception(error)
    client.close()
    [envelope] = transport.envelopes
    event = envelope.get_event()
    assert event is not None
    # Round-trip as ingestion would receive it.
    return dict(orjson.loads(orjson.dumps(event)))


def test_it_scrubs_an_event_captured_by_the_real_sentry_sdk() -> None:
    event = capture_with_real_sdk()
    raw = orjson.dumps(event).decode()
    assert "hunter2" in raw and "bob@example.com" in raw and VISA in raw

    scrub_event(event, ScrubbingRules())

    scrubbed = orjson.dumps(event).decode()
    for secret in ("hunter2", "bob@example.com", VISA, "4111111111111111"):
        assert secret not in scrubbed
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["function"] == "checkout"
    assert frame["vars"] == {
        "user": "'bob'",
        "password": FILTERED,
        "email": "'[email]'",
        "card": "'[creditcard]'",
    }
    assert event["exception"]["values"][0]["type"] == "ValueError"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("Customer", "Customer"),  # a word: no pattern can match, nothing is searched
        ("paid 4111111111111111 \ud800", "paid [creditcard] \ud800"),  # a lone surrogate takes the slow encode
        ("lone \udc00 a@b.io 10.1.2.3", "lone \udc00 [email] 10.1.2.0"),
        ("host \u0661.\u0662.\u0663.\u0664 port 8", "host \u0661.\u0662.\u0663.0 port 8"),  # non-ASCII digits
        ("x 2001:db8::1 y", "x 2001:db8:: y"),
        (GENESIS_ADDRESS, "[wallet]"),
        ("ab\u00a0bearer abcdefghijk", "ab\u00a0bearer [Filtered]"),
    ],
)
def test_substring_prefilters_never_hide_a_match(text: str, scrubbed: str) -> None:
    assert pii_patterns.scrub_text(text, ips=True) == scrubbed


def test_rules_travel_to_processor_processes_by_their_fields() -> None:
    import pickle

    rules = ScrubbingRules(enabled=False, extra_fields=("iban",), safe_fields=("order_id",), scrub_ip_addresses=False)
    copied = pickle.loads(pickle.dumps(rules, pickle.HIGHEST_PROTOCOL))
    assert copied == rules
    assert (copied.enabled, copied.extra_fields, copied.safe_fields, copied.scrub_ip_addresses) == (
        False, ("iban",), ("order_id",), False)
