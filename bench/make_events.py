"""Realistic Sentry error events and gzip envelopes, shared by the benchmarks.

Each event: an exception chain with ~20 in-app/library frames carrying local vars and context lines,
~30 breadcrumbs, request with headers, tags, user, contexts. Half the events repeat one of a bounded
set of issues (REPEAT_ISSUES fingerprints-by-stacktrace), half create a new issue (unique exception
type and function names, so grouping differs).

    python bench/make_events.py --count 2000 --out /tmp/bodies   # writes body_00000.gz ... + index
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

REPEAT_ISSUES = 200
FRAMES = 20
BREADCRUMBS = 30

_WORDS = ("order", "invoice", "customer", "payment", "cart", "session", "report", "export", "account",
          "shipment", "refund", "coupon", "catalog", "inventory", "profile", "search", "webhook", "ledger")
_EXC = ("ValueError", "KeyError", "TypeError", "RuntimeError", "ConnectionError", "TimeoutError",
        "IntegrityError", "PermissionError", "AttributeError", "ZeroDivisionError")
_MODULES = ("app.views", "app.services", "app.models", "app.tasks", "app.api.handlers", "app.billing",
            "lib.cache", "lib.http", "django.core.handlers.base", "sqlalchemy.engine.base")


def _frames(rng: random.Random, seed: str) -> list[dict[str, Any]]:
    frames = []
    for i in range(FRAMES):
        mod = rng.choice(_MODULES)
        func = f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}_{seed}_{i}"
        lineno = rng.randint(10, 900)
        frames.append({
            "filename": mod.replace(".", "/") + ".py",
            "abs_path": "/srv/app/" + mod.replace(".", "/") + ".py",
            "module": mod,
            "function": func,
            "lineno": lineno,
            "in_app": mod.startswith("app."),
            "context_line": f"    result = {func}(request, obj_id={rng.randint(1, 99999)})",
            "pre_context": [f"    # line {lineno - k}: prepare {rng.choice(_WORDS)}" for k in range(3, 0, -1)],
            "post_context": [f"    log.debug('{rng.choice(_WORDS)} done')" for _ in range(2)],
            "vars": {
                "self": f"<{func.title()} object at 0x{rng.getrandbits(48):x}>",
                "request": "<WSGIRequest: POST '/api/v1/orders/'>",
                "obj_id": rng.randint(1, 10**6),
                "retries": rng.randint(0, 5),
                "payload": {"id": rng.randint(1, 10**6), "name": rng.choice(_WORDS),
                            "items": [rng.randint(1, 100) for _ in range(5)], "password": "hunter2"},
                "flag": rng.random() < 0.5,
                "ratio": rng.random(),
            },
        })
    return frames


def _issue_shape(seed: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Exception type, message template and frames determined by `seed` (same seed -> same issue)."""
    rng = random.Random(seed)
    exc_type = f"{rng.choice(_EXC)}{seed.replace('-', '')[:10].title()}"
    message = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} failed"
    return exc_type, message, _frames(rng, seed.replace("-", "")[:12])


def make_event(rng: random.Random, *, new_issue: bool | None = None, now: float | None = None,
               issue: str | None = None) -> dict[str, Any]:
    """One realistic event payload (dict). new_issue=None: 50/50; `issue` forces the issue seed."""
    if new_issue is None:
        new_issue = rng.random() < 0.5
    seed = issue or (uuid.UUID(int=rng.getrandbits(128)).hex if new_issue
                     else f"repeat{rng.randrange(REPEAT_ISSUES)}")
    exc_type, message, frames = _issue_shape(seed)
    now = time.time() if now is None else now
    event_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    crumbs = [{
        "timestamp": now - (BREADCRUMBS - i) * 0.7,
        "type": rng.choice(("default", "http", "query")),
        "category": rng.choice(("django.request", "query", "httplib", "redis", "ui.click")),
        "level": rng.choice(("info", "debug", "warning")),
        "message": f"SELECT * FROM {rng.choice(_WORDS)} WHERE id = {rng.randint(1, 10**6)} AND status = 'open'",
        "data": {"duration_ms": round(rng.random() * 50, 3), "rows": rng.randint(0, 500)},
    } for i in range(BREADCRUMBS)]
    return {
        "event_id": event_id,
        "timestamp": now,
        "platform": "python",
        "level": rng.choice(("error", "error", "error", "warning", "fatal")),
        "logger": "app." + rng.choice(_WORDS),
        "server_name": f"web-{rng.randint(1, 12):02d}",
        "release": f"shop@2026.11.{rng.randint(1, 9)}",
        "environment": rng.choice(("production", "production", "staging")),
        "transaction": f"/api/v1/{rng.choice(_WORDS)}s/{{id}}/",
        "sdk": {"name": "sentry.python", "version": "2.19.0",
                "integrations": ["django", "redis", "celery", "logging", "stdlib"]},
        "exception": {"values": [
            {"type": "OSError", "value": "connection reset by peer", "module": "builtins",
             "stacktrace": {"frames": frames[:4]}, "mechanism": {"type": "chained", "handled": True}},
            {"type": exc_type, "value": f"{message}: id={rng.randint(1, 10**6)}", "module": "app.errors",
             "stacktrace": {"frames": frames}, "mechanism": {"type": "django", "handled": False}},
        ]},
        "breadcrumbs": {"values": crumbs},
        "request": {
            "url": f"https://shop.example.com/api/v1/{rng.choice(_WORDS)}s/{rng.randint(1, 10**6)}/",
            "method": rng.choice(("GET", "POST", "PUT")),
            "query_string": f"page={rng.randint(1, 50)}&sort=-created",
            "headers": {
                "Host": "shop.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
                "Accept": "application/json", "Accept-Language": "en-GB,en;q=0.8",
                "Content-Type": "application/json", "X-Request-Id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "X-Forwarded-For": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                "Cookie": f"sessionid={uuid.UUID(int=rng.getrandbits(128)).hex}; csrftoken=abc",
                "Authorization": "Bearer secret-token-value",
            },
            "data": {"quantity": rng.randint(1, 9), "sku": f"SKU-{rng.randint(1000, 9999)}"},
        },
        "tags": {"customer_tier": rng.choice(("free", "pro", "enterprise")), "region": rng.choice(("eu", "us")),
                 "feature_flag": rng.choice(("new_checkout", "old_checkout")), "worker": str(rng.randint(1, 16))},
        "user": {"id": str(rng.randint(1, 50_000)), "email": f"user{rng.randint(1, 50_000)}@example.com",
                 "ip_address": f"192.0.2.{rng.randint(1, 254)}"},
        "contexts": {
            "os": {"name": "Linux", "version": "6.1.0"},
            "runtime": {"name": "CPython", "version": "3.11.9"},
            "trace": {"trace_id": uuid.UUID(int=rng.getrandbits(128)).hex, "span_id": f"{rng.getrandbits(64):016x}",
                      "op": "http.server"},
        },
        "extra": {"sys.argv": ["gunicorn", "app.wsgi"], "queue_depth": rng.randint(0, 1000)},
        "modules": {name: f"{rng.randint(1, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
                    for name in ("django", "redis", "celery", "requests", "urllib3", "sqlalchemy", "psycopg")},
    }


def envelope_bytes(event: dict[str, Any]) -> bytes:
    header = json.dumps({"event_id": event["event_id"], "sent_at": "2026-11-23T00:00:00Z"})
    return (header + "\n" + json.dumps({"type": "event"}) + "\n" + json.dumps(event) + "\n").encode()


def gzip_envelope(event: dict[str, Any]) -> bytes:
    return gzip.compress(envelope_bytes(event), compresslevel=6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    sizes = []
    for i in range(args.count):
        body = gzip_envelope(make_event(rng))
        (args.out / f"body_{i:05d}.gz").write_bytes(body)
        sizes.append(len(body))
    sizes.sort()
    print(f"{args.count} bodies in {args.out}: gzip size min {sizes[0]} median {sizes[len(sizes)//2]} "
          f"max {sizes[-1]} bytes")


if __name__ == "__main__":
    main()
