"""`watchkeeper gdpr export|erase --user-id N | --email E | --ip A`: one person's data in every domain.

Both print JSON. `export` lists what every domain stores about the person; `erase` deletes or
anonymises it and answers with the rows changed per domain and data class. Both are written to the
audit log (which identifiers were used, never their values). See docs/privacy.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from watchkeeper.lib.clock import SystemClock
from watchkeeper.lib.data_classes import Person


def _person(args: argparse.Namespace) -> Person | None:
    try:
        return Person.of(user_id=args.user_id, email=args.email, ip=args.ip)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _show(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def cmd_export(args: argparse.Namespace) -> int:
    from watchkeeper.auth.audit import record
    from watchkeeper.cli import _engine
    from watchkeeper.privacy import export_person

    person = _person(args)
    if person is None:
        return 2
    with _engine(args).begin() as conn:
        found = export_person(conn, person)
        record(conn, actor_user_id=None, action="gdpr.export", target_type="person", target_id=None,
               details={"by": sorted(person.describe()), "via": "cli"}, now=SystemClock().now())
    _show(found)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from watchkeeper.auth.privacy import ErasureRefused
    from watchkeeper.cli import _engine
    from watchkeeper.privacy import erase_person

    person = _person(args)
    if person is None:
        return 2
    try:
        # One transaction: a person is erased everywhere or nowhere.
        with _engine(args).begin() as conn:
            erased = erase_person(conn, person, SystemClock().now())
    except ErasureRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _show(erased)
    return 0


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """The `gdpr` command group, added by `watchkeeper.cli.build_parser`."""
    gdpr = commands.add_parser("gdpr", help="export or erase one person's data (GDPR)").add_subparsers(
        dest="action", required=True)
    for name, func, text in (("export", cmd_export, "print everything stored about a person, as JSON"),
                             ("erase", cmd_erase, "delete or anonymise everything stored about a person")):
        parser = gdpr.add_parser(name, help=text, parents=[common])
        parser.add_argument("--user-id", help="an SDK's user.id, and the Watchkeeper account with this id")
        parser.add_argument("--email", help="an e-mail address (SDK user.email, an account, a receiver)")
        parser.add_argument("--ip", help="an IP address (SDK user.ip_address, login sessions)")
        parser.set_defaults(func=func)
