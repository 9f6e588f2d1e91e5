"""A small application that reports to Watchkeeper with whichever sentry-sdk it imports.

The tests run it as a subprocess twice, once with the venv's sentry-sdk 2.x and once with 3.x on
PYTHONPATH, so the same code raising the same errors goes through both majors side by side:
`python -m tests.errors.sdk_app <dsn>`.
"""

from __future__ import annotations

import sys

import sentry_sdk


class PaymentDeclined(Exception):
    pass


def charge(card: str) -> None:
    try:
        {"valid": True}[card]
    except KeyError as exc:
        raise PaymentDeclined("the bank said no") from exc


def main(dsn: str) -> None:
    sentry_sdk.init(dsn=dsn, default_integrations=False, release="shop@1.0.0", environment="production")
    sentry_sdk.set_user({"id": f"user-{sentry_sdk.VERSION}"})
    sentry_sdk.set_tag("sdk_major", sentry_sdk.VERSION.split(".")[0])
    sentry_sdk.add_breadcrumb(category="auth", message="user logged in", level="info")
    try:
        charge("expired")
    except PaymentDeclined:
        sentry_sdk.capture_exception()
    sentry_sdk.capture_message("disk almost full", level="warning")
    sentry_sdk.flush(timeout=10)
    print(sentry_sdk.VERSION)


if __name__ == "__main__":
    main(sys.argv[1])
