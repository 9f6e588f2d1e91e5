"""The web application: server-rendered pages (Jinja2, htmx, uPlot) and their static files.

`mount(app)` adds the pages and `/static` to the ASGI app; the modules are the shell (`shell`,
`timerange`, `viewer`), the pages by subject (`login_pages`, `project_pages`, `issue_pages`,
`account_pages`, `admin_pages`) and the few queries they need beyond the errors domain's (`queries`, `event_view`).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def mount(app: FastAPI) -> None:
    from watchkeeper.web import (
        account_pages,
        admin_pages,
        alert_pages,
        api_docs,
        channel_pages,
        incident_pages,
        issue_pages,
        login_pages,
        monitor_form_pages,
        monitor_pages,
        oncall_pages,
        project_pages,
        route_pages,
        routing_pages,
        rule_pages,
        silence_pages,
        status_page_editor,
    )
    from watchkeeper.web.queries import FilterChoices
    from watchkeeper.web.shell import STATIC_DIR, install_page_errors

    app.state.filter_choices = FilterChoices()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (login_pages, project_pages, issue_pages, account_pages, admin_pages,
                   alert_pages, rule_pages, silence_pages, channel_pages, route_pages, routing_pages, incident_pages,
                   oncall_pages, monitor_pages, monitor_form_pages, status_page_editor, api_docs):
        app.include_router(module.router)
    install_page_errors(app)
