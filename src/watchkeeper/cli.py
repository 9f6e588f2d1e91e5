"""`watchkeeper` command line: serve, migrate, projects, tokens, users, teams, gdpr, config check."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import orjson

from watchkeeper.config import ConfigError, Settings, load_settings
from watchkeeper.lib.clock import SystemClock


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "server_role", None) is not None:  # `serve --role` (`user create --role` is a user's)
        overrides["role"] = args.server_role
    return load_settings(config_file=args.config, overrides=overrides)


class NoDataDirectory(Exception):
    """A command that reads the data would otherwise create a new, empty data directory."""


# Where `serve` last listened, kept in the data directory so that the CLI, run beside it, prints DSNs
# and URLs that reach it (`serve --port 8123` then `project create`).
SERVER_ADDRESS_FILE = "server.json"

PUBLIC_URL_HINT = (
    "set public_url (WATCHKEEPER_PUBLIC_URL=https://watchkeeper.example.com, or public_url: in the "
    "--config file) to the address SDKs and browsers use, or start `watchkeeper serve` with this data "
    "directory once"
)


def record_server_address(settings: Settings) -> None:
    """Write where this server listens into its data directory (read by `public_address`)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    record = {"host": settings.host, "port": settings.port, "url": settings.listen_url}
    path = settings.data_dir / SERVER_ADDRESS_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(record))
    temporary.replace(path)


def public_address(settings: Settings) -> str | None:
    """The URL to print in DSNs and links: ``public_url``, else where `serve` last listened with this
    data directory, else None (unknown: the caller says so rather than print an address that loses
    events)."""
    if settings.public_url:
        return settings.base_url
    try:
        record = orjson.loads((settings.data_dir / SERVER_ADDRESS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    url = record.get("url") if isinstance(record, dict) else None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def _unknown_address(what: str) -> None:
    print(f"note: the server's address is not known, so no {what} is printed: {PUBLIC_URL_HINT}.",
          file=sys.stderr)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(text)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before the server starts its threads.

    glibc gives each thread that allocates its own heap (up to 8 per core), and memory freed in one is
    not reused by another: the server's pool threads (readers, alerting, uptime) each kept tens of MB
    of free heap after large reads — 34-45 MiB of the server's RSS in an alert storm. Python's GIL
    serialises the threads anyway, so two arenas cost no contention. No effect on other C libraries.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # from glibc's malloc.h
    mallopt(m_arena_max, arenas)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from watchkeeper.app import bootstrap_admin, build_runtime, create_app

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for client_logger in ("httpx", "httpcore"):
        logging.getLogger(client_logger).setLevel(settings.outbound.log_level.upper())
    _limit_malloc_arenas()
    runtime = build_runtime(settings, migrate_in_child=True)
    record_server_address(settings)
    password = bootstrap_admin(runtime.engine, settings, runtime.clock)
    role = "" if settings.role == "all" else f", role {settings.role}"
    print(f"Watchkeeper {settings.profile}{role} on {settings.base_url}  (data: {settings.data_dir.resolve()})",
          flush=True)
    from watchkeeper.errors.processing import processing_build

    logging.getLogger("watchkeeper").info("event processing: %s", processing_build())
    if password:
        print(f"Created admin user {settings.admin_email} with one-time password: {password}", flush=True)
    app = create_app(settings, runtime=runtime)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=10,
        # Forwarded headers are believed from the `trusted_proxies` setting only, by the app itself.
        proxy_headers=False,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from watchkeeper.app import open_database
    from watchkeeper.store.migrate import current_revisions, describe

    engine = open_database(_settings(args))
    print(f"database schema at revisions {describe(current_revisions(engine))}")
    return 0


def _engine(args: argparse.Namespace) -> Any:
    """The database for one short command; it may run beside a busy server, so it writes with the lock.

    Only `serve` and `migrate` create a data directory: a command run from the wrong directory would
    otherwise work on a new, empty database (and print a DSN the server rejects)."""
    from watchkeeper.app import open_database
    from watchkeeper.store.engine import for_writing

    settings = _settings(args)
    if settings.database_url is None and not (settings.data_dir / "watchkeeper.db").is_file():
        where = settings.data_dir.resolve()
        raise NoDataDirectory(
            f"no Watchkeeper database in {where} (this command does not create one). Run it from the "
            "directory where `watchkeeper serve` runs, or pass --data-dir (or WATCHKEEPER_DATA_DIR) "
            "naming the server's data directory; `watchkeeper serve` or `watchkeeper migrate` create a new one."
        )
    return for_writing(open_database(settings))


def cmd_project_create(args: argparse.Namespace) -> int:
    from watchkeeper.auth.audit import record
    from watchkeeper.auth.projects import ProjectError, create_project, list_keys
    from watchkeeper.auth.teams import check_project_name

    settings = _settings(args)
    engine = _engine(args)
    now = SystemClock().now()
    try:
        with engine.begin() as conn:
            check_project_name(conn, args.name, [])
            project = create_project(conn, args.name, now=now, platform=args.platform)
            key = list_keys(conn, project.id)[0]
            record(conn, actor_user_id=None, action="project.create", target_type="project", target_id=project.id,
                   details={"name": project.name, "via": "cli"}, now=now)
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = public_address(settings)
    dsn = key.dsn(base) if base else None
    if dsn is None:
        _unknown_address("DSN")
    _print(
        args,
        {"id": project.id, "name": project.name, "slug": project.slug, "dsn": dsn},
        f"Created project {project.name} (id {project.id}).\n"
        + (f"DSN: {dsn}" if dsn else f"DSN: unknown (public key {key.public_key}); see the note above"),
    )
    return 0


def cmd_project_list(args: argparse.Namespace) -> int:
    from watchkeeper.auth.projects import list_keys, list_projects

    settings = _settings(args)
    base = public_address(settings)
    with _engine(args).connect() as conn:
        rows: list[dict[str, Any]] = []
        for project in list_projects(conn):
            keys = [k for k in list_keys(conn, project.id) if k.is_active]
            rows.append(
                {
                    "id": project.id,
                    "name": project.name,
                    "slug": project.slug,
                    "dsn": keys[0].dsn(base) if keys and base else None,
                    "public_key": keys[0].public_key if keys else None,
                }
            )
    if rows and base is None:
        _unknown_address("DSN")
    unknown = "(address unknown; public key {})"
    text = "\n".join(
        f"{r['id']:>4}  {r['slug']:<24} "
        + str(r["dsn"] or (unknown.format(r["public_key"]) if r["public_key"] else "(no active key)"))
        for r in rows
    )
    _print(args, rows, text or "no projects yet: watchkeeper project create NAME")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from watchkeeper.auth.audit import record
    from watchkeeper.auth.tables import users
    from watchkeeper.auth.tokens import create_token

    with _engine(args).begin() as conn:
        query = select(users.c.id, users.c.email)
        query = (
            query.where(users.c.email == args.user.lower())
            if args.user
            else query.where(users.c.role == "admin").order_by(users.c.id)
        )
        owner = conn.execute(query).first()
        if owner is None:
            print(
                f"error: no user {args.user or '(admin)'}; create one with 'watchkeeper user create'", file=sys.stderr
            )
            return 2
        now = SystemClock().now()
        token = create_token(conn, owner.id, args.name, read_only=args.read_only, now=now)
        record(conn, actor_user_id=None, action="token.create", target_type="token", target_id=token.id,
               details={"name": token.name, "user_id": owner.id, "read_only": args.read_only, "via": "cli"}, now=now)
    _print(
        args,
        {"id": token.id, "name": token.name, "token": token.token, "user": owner.email},
        f"API token {token.name} for {owner.email} (shown once):\n{token.token}",
    )
    return 0


def cmd_user_create(args: argparse.Namespace) -> int:
    import getpass

    from watchkeeper.auth.audit import record
    from watchkeeper.auth.users import UserError, create_user, generate_password

    password = args.password or (
        None if args.generate else getpass.getpass("Password: ") if sys.stdin.isatty() else None
    )
    generated = password is None
    password = password or generate_password()
    try:
        now = SystemClock().now()
        with _engine(args).begin() as conn:
            user = create_user(conn, args.email, password, role=args.role, now=now, one_time=generated)
            record(conn, actor_user_id=None, action="user.create", target_type="user", target_id=user.id,
                   details={"email": user.email, "role": user.role, "via": "cli"}, now=now)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = f"Created {user.role} {user.email}" + (f" with password: {password}" if generated else "")
    _print(
        args,
        {"id": user.id, "email": user.email, "role": user.role, **({"password": password} if generated else {})},
        text,
    )
    return 0


def cmd_team_create(args: argparse.Namespace) -> int:
    from watchkeeper.auth.audit import record
    from watchkeeper.auth.teams import TeamError, create_team

    now = SystemClock().now()
    try:
        with _engine(args).begin() as conn:
            team = create_team(conn, args.name, now=now)
            record(conn, actor_user_id=None, action="team.create", target_type="team", target_id=team.id,
                   details={"name": team.name, "via": "cli"}, now=now)
    except TeamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(args, {"id": team.id, "name": team.name}, f"Created team {team.name} (id {team.id})")
    return 0


def cmd_team_add(args: argparse.Namespace) -> int:
    from watchkeeper.auth.audit import record
    from watchkeeper.auth.teams import add_member, find_team
    from watchkeeper.auth.users import find_user

    now = SystemClock().now()
    with _engine(args).begin() as conn:
        team, user = find_team(conn, args.team), find_user(conn, args.email)
        if team is None or user is None:
            missing = f"team {args.team!r}" if team is None else f"user {args.email}"
            print(f"error: no {missing}", file=sys.stderr)
            return 2
        if add_member(conn, team.id, user.id):
            record(conn, actor_user_id=None, action="team.member_add", target_type="team", target_id=team.id,
                   details={"user_id": user.id, "via": "cli"}, now=now)
    _print(args, {"team": team.name, "email": user.email}, f"{user.email} is in team {team.name}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from watchkeeper.alerting.service import check_files

    settings = _settings(args)
    check_files(settings.alerting)  # the routing and rules files, as `serve` reads them at start
    shown = settings.model_dump(mode="json")
    for secret in ("secret_key", "admin_password"):
        if shown.get(secret):
            shown[secret] = "**********"
    if shown.get("database_url"):
        # postgresql+psycopg://user:password@host/db: the password is a secret too
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            shown["database_url"] = make_url(shown["database_url"]).render_as_string(hide_password=True)
        except ArgumentError:
            shown["database_url"] = "**********"
    _print(args, shown, "configuration OK\n" + orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="watchkeeper", description="Self-hosted production monitoring.")
    parser.add_argument("--config", type=Path, help="YAML settings file (or WATCHKEEPER_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="where the SQLite database lives")
    # The same two options are accepted after the command too (`watchkeeper serve --data-dir D`);
    # SUPPRESS keeps a value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server", parents=[common])
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--role", dest="server_role", choices=["all", "web", "ingest", "worker"],
                       help="what this process does (default all; see docs/deployment.md)")
    serve.set_defaults(func=cmd_serve)

    commands.add_parser("migrate", help="apply database migrations", parents=[common]).set_defaults(func=cmd_migrate)

    project = commands.add_parser("project", help="manage projects").add_subparsers(dest="action", required=True)
    create = project.add_parser("create", help="create a project and print its DSN", parents=[common])
    create.add_argument("name")
    create.add_argument("--platform")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_project_create)
    listing = project.add_parser("list", help="list projects and their DSNs", parents=[common])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_project_list)

    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    tcreate = token.add_parser("create", help="create an API token", parents=[common])
    tcreate.add_argument("name")
    tcreate.add_argument("--user", help="owner's e-mail (default: the first admin)")
    tcreate.add_argument("--read-only", action="store_true")
    tcreate.add_argument("--json", action="store_true")
    tcreate.set_defaults(func=cmd_token_create)

    user = commands.add_parser("user", help="users").add_subparsers(dest="action", required=True)
    ucreate = user.add_parser("create", help="create a user", parents=[common])
    ucreate.add_argument("email")
    ucreate.add_argument("--role", choices=["admin", "member", "viewer"], default="member")
    ucreate.add_argument("--password", help="default: prompt, or generate when not on a terminal")
    ucreate.add_argument("--generate", action="store_true", help="generate a password and print it")
    ucreate.add_argument("--json", action="store_true")
    ucreate.set_defaults(func=cmd_user_create)

    team = commands.add_parser("team", help="teams (own projects)").add_subparsers(dest="action", required=True)
    tmcreate = team.add_parser("create", help="create a team", parents=[common])
    tmcreate.add_argument("name")
    tmcreate.add_argument("--json", action="store_true")
    tmcreate.set_defaults(func=cmd_team_create)
    tmadd = team.add_parser("add", help="add a user to a team", parents=[common])
    tmadd.add_argument("team", help="team name")
    tmadd.add_argument("email")
    tmadd.add_argument("--json", action="store_true")
    tmadd.set_defaults(func=cmd_team_add)

    from watchkeeper.alerting.incident_cli import add_commands as add_incident_commands
    from watchkeeper.alerting.silence_cli import add_commands as add_silence_commands
    from watchkeeper.privacy_cli import add_commands as add_gdpr_commands

    add_incident_commands(commands, common)
    add_silence_commands(commands, common)
    add_gdpr_commands(commands, common)
    config = commands.add_parser("config", help="settings").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="validate the settings and print them", parents=[common])
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except NoDataDirectory as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
