"""The README and docs/ name only API endpoints the application really has."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import Server

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
