"""sentry-sdk 2.x and 3.x side by side: the same application's errors are stored and grouped alike.

3.x is an OpenTelemetry-based rewrite (no `start_transaction`, spans streamed instead of transactions);
a team upgrading the SDK must keep its issues. Both majors run the same code (tests/errors/sdk_app.py)
in a subprocess, 2.x from the venv and 3.x from its own pinned folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ProjectFixture, Server, client_packages

REPO = Path(__file__).resolve().parents[2]


def run_app(dsn: str, *, sdk3: bool) -> str:
    path = [str(REPO)]
    if sdk3:
        path.insert(0, str(client_packages("sentry-sdk-3")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.errors.sdk_app", dsn], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_errors_from_sentry_sdk_2_and_3_land_in_the_same_issues(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    versions = [run_app(project.dsn, sdk3=False), run_app(project.dsn, sdk3=True)]
    assert [v.split(".")[0] for v in versions] == ["2", "3"]

    issues = api.get(f"/api/v1/projects/{project.id}/issues", params={"status": "all"}).json()["issues"]
    # The same exception from the same code is one issue, whichever major sent it.
    (declined,) = [issue for issue in issues if issue["title"] == "PaymentDeclined: the bank said no"]
    assert (declined["count"], declined["user_count"]) == (2, 2)
    # 3.x attaches the stack to messages by default and 2.x does not; Sentry groups a message by its
    # in-app stack when it has one, so the two majors' messages may fall into two issues.
    messages = [issue for issue in issues if issue["title"] == "disk almost full"]
    assert sum(issue["count"] for issue in messages) == 2
    assert len(issues) == 1 + len(messages)

    for issue in [declined, *messages]:
        detail = api.get(f"/api/v1/issues/{issue['id']}").json()
        tags = {t["key"]: {v["value"] for v in t["top_values"]} for t in detail["tags"]}
        assert tags["release"] == {"shop@1.0.0"}
        events = api.get(f"/api/v1/issues/{issue['id']}/events").json()["events"]
        assert len(events) == issue["count"]
        for summary in events:
            event = api.get(f"/api/v1/projects/{project.id}/events/{summary['event_id']}").json()["data"]
            major = event["sdk"]["version"].split(".")[0]
            assert event["sdk"]["version"] in versions
            assert ["sdk_major", major] in event["tags"]
            assert event["user"] == {"id": f"user-{event['sdk']['version']}"}
            crumbs = [(c.get("category"), c.get("message")) for c in event["breadcrumbs"]["values"]]
            assert ("auth", "user logged in") in crumbs
    detail = api.get(f"/api/v1/issues/{declined['id']}").json()
    tags = {t["key"]: {v["value"] for v in t["top_values"]} for t in detail["tags"]}
    assert tags["sdk_major"] == {"2", "3"}
    chained = api.get(f"/api/v1/issues/{declined['id']}/events/latest").json()["data"]
    assert [v["type"] for v in chained["exception"]["values"]] == ["KeyError", "PaymentDeclined"]
