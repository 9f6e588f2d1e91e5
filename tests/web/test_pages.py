"""The pages over HTTP (httpx): status codes, what they show, escaping, CSRF and access per role."""

from __future__ import annotations

import httpx

from tests.conftest import Server, make_project


def test_pages_need_a_login(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        answer = client.get("/projects/1/issues?range=7d")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fprojects%2F1%2Fissues%3Frange%3D7d"


def test_smoke(server: Server, admin: httpx.Client) -> None:
    project = make_project(server)
    for path in ("/projects", "/projects/new", f"/projects/{project.id}/issues", f"/projects/{project.id}/setup",
                 f"/projects/{project.id}/settings", f"/projects/{project.id}/keys"):
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text[:2000])
        assert "Content-Security-Policy" in answer.headers
