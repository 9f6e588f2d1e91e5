"""Health, readiness and Prometheus metrics of a running server."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.conftest import ProjectFixture, Server
from tests.errors.test_issue_lifecycle import send_event
from watchkeeper.store.engine import for_writing
from watchkeeper.store.migrate import head_revisions


def samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_health_passes(server: Server) -> None:
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.json()["status"] == "pass"
    assert httpx.head(f"{server.url}/health").status_code == 200


def test_readiness_reports_each_check(server: Server) -> None:
    response = httpx.get(f"{server.url}/health/ready")
    assert response.headers["content-type"] == "application/health+json"
    body = response.json()
    checks = body["checks"]
    assert set(checks) == {"database:writable", "database:migrations", "writer:queue", "disk:free"}
    assert checks["database:writable"][0]["status"] == "pass"
    assert checks["database:migrations"][0]["status"] == "pass"
    # The background work (lease, alerting rounds) may have a write queued at that moment.
    queue = checks["writer:queue"][0]
    assert queue == {"componentType": "component", "observedValue": queue["observedValue"], "observedUnit": "jobs",
                     "status": "pass"}
    assert 0 <= queue["observedValue"] <= 5
    assert checks["disk:free"][0]["observedValue"] > 0
    # on a nearly full test disk the free-space check may warn, which still answers 200
    assert body["status"] in ("pass", "warn") and response.status_code == 200
    assert body["status"] == ("warn" if checks["disk:free"][0]["status"] == "warn" else "pass")


def test_readiness_fails_when_the_writer_is_stopped(server: Server) -> None:
    server.runtime.writer.stop()
    response = httpx.get(f"{server.url}/health/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["writer:queue"][0]["status"] == "fail"
    server.runtime.writer.start()
    assert httpx.get(f"{server.url}/health/ready").json()["checks"]["writer:queue"][0]["status"] == "pass"


def settled_samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The metrics at a moment the writer had nothing queued (background work writes too, e.g. at start:
    this asks again until the scrape itself saw an empty queue)."""
    deadline = time.monotonic() + 10
    while True:
        found = samples(server)
        if found[("watchkeeper_writer_queue_depth", ())] == 0:
            return found
        assert time.monotonic() < deadline, "the writer queue did not drain"
        time.sleep(0.01)


def test_metrics_count_accepted_events_latency_commits_and_queue_depth(server: Server, project: ProjectFixture) -> None:
    before = settled_samples(server)
    assert before[("watchkeeper_writer_queue_depth", ())] == 0
    for _ in range(3):
        assert send_event(server, project).status_code == 200
    assert send_event(server, project, public_key="0" * 32).status_code in (401, 403)
    after = settled_samples(server)
    accepted = after[("watchkeeper_ingest_items_total", (("category", "error"), ("outcome", "accepted")))]
    assert accepted == 3
    assert after[("watchkeeper_ingest_request_seconds_count", ())] >= 3
    assert after[("watchkeeper_ingest_request_seconds_bucket", (("le", "+Inf"),))] >= 3
    assert after[("watchkeeper_db_commit_seconds_count", ())] >= 1
    assert after[("watchkeeper_db_commit_jobs_sum", ())] >= 3
    assert after[("watchkeeper_writer_queue_depth", ())] == 0
    assert sum(v for (name, _), v in after.items() if name == "watchkeeper_ingest_rejected_requests_total") == 1


def test_readiness_names_every_branch_and_fails_when_one_is_behind(server: Server) -> None:
    """Each domain migrates on its own branch: the schema is current only when every branch is at its head."""
    heads = head_revisions()
    assert {"errors_0000", "uptime_0000", "alerting_0000", "auth_0000", "platform_0000"} <= heads
    check = httpx.get(f"{server.url}/health/ready").json()["checks"]["database:migrations"][0]
    assert check["status"] == "pass" and check["observedValue"] == " ".join(sorted(heads))
    behind = max(heads)
    with for_writing(server.runtime.engine).begin() as conn:
        conn.execute(text("DELETE FROM alembic_version WHERE version_num = :head"), {"head": behind})
    response = httpx.get(f"{server.url}/health/ready")
    check = response.json()["checks"]["database:migrations"][0]
    assert response.status_code == 503 and check["status"] == "fail"
    assert behind not in check["observedValue"] and check["output"] == f"expected {' '.join(sorted(heads))}"
