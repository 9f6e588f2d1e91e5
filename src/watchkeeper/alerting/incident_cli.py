"""`watchkeeper incident list|ack|resolve|note`: incidents from the command line, on the database directly
(like the other short commands), recorded on the timeline as done "via the CLI"."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from watchkeeper.lib.clock import SystemClock


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_list(args: argparse.Namespace) -> int:
    from watchkeeper.alerting.incidents import STATES, list_incidents
    from watchkeeper.cli import _engine, _print

    states = [s for s in STATES if s != "resolved"] if args.state == "open" else [args.state] if args.state else None
    with _engine(args).connect() as conn:
        found = list_incidents(conn, states=states, severity=args.severity, limit=args.limit)
    lines = [f"#{i.id:<5} {i.severity:<8} {i.state:<13} {_when(i.created_at)}  {i.title}" for i in found]
    _print(args, [i.to_api() for i in found], "\n".join(lines) or "no incidents")
    return 0


def _change(args: argparse.Namespace, state: str) -> int:
    from watchkeeper.alerting.incidents import IncidentError, change_state
    from watchkeeper.cli import _engine, _print

    try:
        with _engine(args).begin() as conn:
            incident = change_state(conn, args.id, state, now=SystemClock().now(), actor_user_id=_actor(conn, args),
                                    via="the CLI")
    except LookupError:
        print(f"error: no incident #{args.id}" + (f" or no user {args.user}" if args.user else ""), file=sys.stderr)
        return 2
    except IncidentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print(args, incident.to_api(), f"incident #{incident.id} is {incident.state}")
    return 0


def _actor(conn: Any, args: argparse.Namespace) -> int | None:
    if not args.user:
        return None
    from watchkeeper.auth.users import find_user

    user = find_user(conn, args.user)
    if user is None:
        raise LookupError(args.user)
    return user.id


def cmd_ack(args: argparse.Namespace) -> int:
    return _change(args, "acknowledged")


def cmd_resolve(args: argparse.Namespace) -> int:
    return _change(args, "resolved")


def cmd_note(args: argparse.Namespace) -> int:
    from watchkeeper.alerting.incidents import add_note
    from watchkeeper.cli import _engine, _print

    try:
        with _engine(args).begin() as conn:
            add_note(conn, args.id, args.text, now=SystemClock().now(), actor_user_id=_actor(conn, args))
    except LookupError:
        print(f"error: no incident #{args.id} (or no user {args.user})", file=sys.stderr)
        return 2
    _print(args, {"incident_id": args.id, "text": args.text}, f"note added to incident #{args.id}")
    return 0


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """The `incident` command group, added by `watchkeeper.cli.build_parser`."""
    incident = commands.add_parser("incident", help="incidents").add_subparsers(dest="action", required=True)
    listing = incident.add_parser("list", help="list incidents, newest first", parents=[common])
    listing.add_argument("--state", choices=["open", "triggered", "acknowledged", "investigating", "mitigated",
                                             "resolved"])
    listing.add_argument("--severity", choices=["critical", "high", "medium", "low"])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    for name, function, text in (("ack", cmd_ack, "acknowledge an incident (stops its escalation)"),
                                 ("resolve", cmd_resolve, "resolve an incident")):
        sub = incident.add_parser(name, help=text, parents=[common])
        sub.add_argument("id", type=int)
        sub.add_argument("--user", help="who did it (e-mail), for the timeline")
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=function)
    note = incident.add_parser("note", help="add a note to an incident's timeline", parents=[common])
    note.add_argument("id", type=int)
    note.add_argument("text")
    note.add_argument("--user", help="who wrote it (e-mail)")
    note.add_argument("--json", action="store_true")
    note.set_defaults(func=cmd_note)
