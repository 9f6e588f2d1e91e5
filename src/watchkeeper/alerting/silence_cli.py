"""`watchkeeper silence list|add|expire`: silences from the command line, on the database directly (like
the other short commands). Matchers are written as in Alertmanager and amtool: `alertname="Disk full"`,
`severity=~"high|critical"`, `team!=db`. (amtool itself also works, against `/api/v2`.)"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from watchkeeper.lib.clock import SystemClock


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_list(args: argparse.Namespace) -> int:
    from watchkeeper.alerting.api import silence_view
    from watchkeeper.alerting.silences import list_silences
    from watchkeeper.cli import _engine, _print

    now = SystemClock().now()
    with _engine(args).connect() as conn:
        found = [s for s in list_silences(conn) if args.all or s.state(now) != "expired"]
    lines = [f"{s.id}  {s.state(now):<8} until {_when(s.ends_at)}  {', '.join(map(str, s.matchers))}  "
             f"({s.created_by}: {s.comment})" for s in found]
    _print(args, [silence_view(s, now) for s in found], "\n".join(lines) or "no silences")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from watchkeeper.alerting.api import silence_view
    from watchkeeper.alerting.matchers import parse_duration, parse_matchers
    from watchkeeper.alerting.silences import save_silence
    from watchkeeper.auth.audit import record
    from watchkeeper.cli import _engine, _print

    now = SystemClock().now()
    try:
        matchers = parse_matchers(args.matchers)
        duration = parse_duration(args.duration)
        if duration <= 0:
            raise ValueError("--duration: must be more than 0")
        with _engine(args).begin() as conn:
            silence = save_silence(conn, matchers, starts_at=now, ends_at=now + duration,
                                   created_by=args.author[:200], comment=args.comment, now=now)
            record(conn, actor_user_id=None, action="silence.create", target_type="silence", target_id=silence.id,
                   details={"matchers": [str(m) for m in matchers], "comment": args.comment, "via": "cli"}, now=now)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(args, silence_view(silence, now), f"silence {silence.id} until {_when(silence.ends_at)}")
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    from watchkeeper.alerting.silences import expire_silence
    from watchkeeper.auth.audit import record
    from watchkeeper.cli import _engine, _print

    now = SystemClock().now()
    with _engine(args).begin() as conn:
        done = expire_silence(conn, args.id, now=now)
        if done:
            record(conn, actor_user_id=None, action="silence.expire", target_type="silence", target_id=args.id,
                   details={"via": "cli"}, now=now)
    if not done:
        print(f"error: no active or pending silence {args.id}", file=sys.stderr)
        return 2
    _print(args, {"id": args.id, "expired": True}, f"silence {args.id} expired")
    return 0


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """The `silence` command group, added by `watchkeeper.cli.build_parser`."""
    silence = commands.add_parser("silence", help="silences (mute matching alerts)").add_subparsers(
        dest="action", required=True)
    listing = silence.add_parser("list", help="active and pending silences", parents=[common])
    listing.add_argument("--all", action="store_true", help="expired ones too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    add = silence.add_parser("add", help="silence alerts matching all the matchers", parents=[common])
    add.add_argument("matchers", nargs="+", help='e.g. alertname="Disk full" severity=~"high|critical"')
    add.add_argument("--duration", default="1h", help="how long, e.g. 30m, 2h, 1d (default 1h)")
    add.add_argument("--comment", required=True, help="why")
    add.add_argument("--author", default="cli", help="who (shown with the silence)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)
    expire = silence.add_parser("expire", help="end a silence now", parents=[common])
    expire.add_argument("id")
    expire.add_argument("--json", action="store_true")
    expire.set_defaults(func=cmd_expire)
