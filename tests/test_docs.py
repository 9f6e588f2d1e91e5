"""The README and docs/ name only API endpoints the application really has, and the README's command table
and "What the server speaks" are complete."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute
from starlette.routing import Match, Mount, Route

from tests.conftest import Server
from watchkeeper.app import build_runtime, create_app
from watchkeeper.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# /api/v1/projects/{id}/issues, /api/v1/monitors/<id>/sla, /api/v2/silence/{id}, /api/v1/oncall/schedules/1/shifts
API_PATH = re.compile(r"/api/v[0-9]+/[A-Za-z0-9_{}<>:./-]*")
PARAMETER = re.compile(r"\{[^}]*\}|<[^>]*>")


def concrete(documented: str) -> str:
    """A path to request: every written parameter becomes 1 (an id; a name that is not there is a 404 with
    its own message, not the router's)."""
    return PARAMETER.sub("1", documented)


def no_such_route(answer: httpx.Response) -> bool:
    """The router's own 404 (no route matched), not an endpoint's "project 1 not found"."""
    return answer.status_code == 404 and answer.headers.get("content-type", "").startswith("application/json") \
        and answer.json().get("detail") == "Not Found"


def documented_paths() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for document in DOCUMENTS:
        for match in API_PATH.finditer(document.read_text()):
            path = match.group(0).rstrip(".:,/")
            found.setdefault(path, set()).add(document.relative_to(ROOT).as_posix())
    return found


def test_every_api_path_in_the_readme_and_docs_is_a_route_of_the_app(server: Server) -> None:
    documented = documented_paths()
    assert len(documented) > 20  # the docs do name endpoints; the pattern finds them
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert no_such_route(client.get("/api/v1/oncall/policies"))  # the check can fail
        missing = {path: sorted(where) for path, where in documented.items()
                   if no_such_route(client.get(concrete(path)))}
    assert not missing, f"the docs name endpoints the app does not have: {missing}"


def cli_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Every command a user can run ("serve", "incident ack", …), from the CLI's own argparse tree, with
    its options (`--json`, …)."""
    found: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(cli_commands(sub, (*path, name)))
    if not found and path:
        found[" ".join(path)] = {option for action in parser._actions for option in action.option_strings}
    return found


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def readme_command_rows() -> dict[str, str]:
    """The first cell of each row of the README's command table, by the command it names."""
    rows = {}
    for line in readme_section("Commands").splitlines():
        cell = re.match(r"^\| `watchkeeper ([^`]*)`", line)
        if cell:
            words = re.match(r"[a-z][a-z-]*(?: [a-z][a-z-]*)*", cell.group(1))
            assert words, line
            rows[words.group(0)] = cell.group(1)
    return rows


def test_the_readme_command_table_has_every_cli_command_and_only_real_options() -> None:
    commands = cli_commands(build_parser())
    assert {"serve", "migrate", "config check", "incident ack", "silence add"} <= commands.keys()
    rows = readme_command_rows()
    missing = sorted(commands.keys() - rows.keys())
    assert not missing, f"README.md's command table lacks: {missing}"
    unknown = sorted(rows.keys() - commands.keys())
    assert not unknown, f"README.md's command table names commands the CLI does not have: {unknown}"
    # --config and --data-dir are accepted by every command (before or after it).
    wrong = {command: option for command, row in rows.items() for option in re.findall(r"--[a-z-]+", row)
             if option not in commands[command] | {"--config", "--data-dir"}}
    assert not wrong, f"README.md's command table names options the commands do not take: {wrong}"


SPEAKS_PATH = re.compile(r"`(?:[A-Z]+ )?(/[^`\s]*)`")


def speaks_paths() -> list[str]:
    """The paths "What the server speaks" names (`/ping/<uuid>`, `/api/v1`, `/status/<slug>/json`, …)."""
    return sorted({match.group(1) for match in SPEAKS_PATH.finditer(readme_section("What the server speaks"))})


def normal(path: str) -> str:
    """`/api/<project_id>/envelope/` and `/api/{project_id}/envelope/` both → `/api/{}/envelope`."""
    return re.sub(r"\{[^}]*\}|<[^>]*>", "{}", path).rstrip("/") or "/"


def route_paths(app: Any) -> set[str]:
    """Every path the app routes, parameters as {}: plain routes, mounts and FastAPI's included routers."""
    paths = set()
    for route in app.routes:
        if isinstance(route, Mount):
            paths.add(normal(route.path) + "/{}")
        elif isinstance(route, Route | APIRoute):
            paths.add(normal(route.path_format))
        elif hasattr(route, "effective_route_contexts"):  # include_router (FastAPI ≥ 0.130)
            paths.update(normal(context.path_format) for context in route.effective_route_contexts())
        else:
            raise AssertionError(f"route_paths does not know {type(route).__name__} routes: teach it")
    return paths


def under(path: str, prefix: str) -> bool:
    return path == prefix or (prefix != "/" and path.startswith(prefix + "/"))


def routed(app: Any, path: str) -> bool:
    """Whether the app's router has a route for GET `path` (for any method: a POST-only route counts)."""
    scope = {"type": "http", "path": path, "root_path": "", "method": "GET", "headers": []}
    return any(route.matches(scope)[0] != Match.NONE for route in app.routes)


def test_what_the_server_speaks_names_every_endpoint_family_and_only_real_ones(server: Server) -> None:
    runtime = build_runtime(server.settings)
    try:  # the app `server` runs, built again to read its routes
        app = create_app(server.settings, runtime=runtime)
        routes = route_paths(app)
    finally:
        runtime.engine.dispose()
    assert {"/api/{}/envelope", "/ping/{}", "/status/{}", "/api/v1/projects", "/health", "/login"} <= routes
    documented = speaks_paths()
    assert len(documented) > 5  # the pattern finds them
    full = [path for path in documented if routed(app, concrete(path))]
    not_routes = [path for path in documented
                  if path not in full and not any(under(route, normal(path)) for route in routes)]
    assert not not_routes, f"README.md's \"What the server speaks\" names paths the app does not route: {not_routes}"
    undocumented = sorted(route for route in routes if not any(under(route, normal(path)) for path in documented))
    assert not undocumented, f"README.md's \"What the server speaks\" has no family for: {undocumented}"
    # A path that is a route itself is served: over HTTP it reaches an endpoint, not the router's 404.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert no_such_route(client.get("/no-such-family/1"))  # the check can fail
        unserved = [path for path in full if no_such_route(client.get(concrete(path), follow_redirects=False))]
    assert not unserved, f"these paths of \"What the server speaks\" are not served: {unserved}"
