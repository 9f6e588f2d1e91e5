import httpx
import sentry_sdk

from tests.conftest import ProjectFixture, Server


def test_an_error_sent_with_sentry_sdk_becomes_an_issue(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    client = sentry_sdk.Client(dsn=project.dsn)
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        try:
            int("abc")
        except ValueError:
            sentry_sdk.capture_exception()
    client.flush(timeout=10)
    issues = api.get(f"/api/v1/projects/{project.id}/issues").json()["issues"]
    assert [i["title"] for i in issues] == ["ValueError: invalid literal for int() with base 10: 'abc'"]
