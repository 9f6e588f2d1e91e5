"""/api/docs in Chromium with no way out of the machine: Swagger UI comes from our static files, starts
under the pages' Content-Security-Policy (no inline script), and the console stays clean."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, Route, expect

from tests.conftest import Server
from tests.web.conftest import ARTIFACTS, Console
from tests.web.test_browser import shot
from watchkeeper.web.shell import CONTENT_SECURITY_POLICY


def test_the_api_docs_load_offline_under_the_csp(page: Page, server: Server, console: Console) -> None:
    outside: list[str] = []

    def only_our_server(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:  # a CDN, a schema validator, fonts: none may be needed
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_our_server)
    answer = page.goto(server.url + "/api/docs")
    assert answer is not None and answer.status == 200
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Watchkeeper")
    page.get_by_text("/api/v1/projects").first.wait_for()
    expect(page.locator(".opblock").first).to_be_visible()
    shot(page, "api-docs")
    page.screenshot(path=str(ARTIFACTS / "api-docs-top.png"))  # the first screen, to look at
    assert outside == []
    assert console.errors == []  # a CSP violation is a console error; the fixture checks again at the end


def test_the_api_docs_page_names_no_other_origin(server: Server) -> None:
    html = httpx.get(server.url + "/api/docs").text
    assert "http" not in html.replace('href="/', "").lower().split("<body>")[0]
    assert "<script>" not in html and "cdn" not in html.lower()
    bundle = httpx.get(server.url + "/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith(("text/javascript",
                                                                                    "application/javascript"))
