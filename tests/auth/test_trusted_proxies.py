"""The per-address login lock-out keys on the real client: X-Forwarded-For is believed from the proxies of the
`trusted_proxies` setting only (here the test client on 127.0.0.1 plays nginx, or a stranger)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import run_server
from tests.web.conftest import ensure_admin, form_token
from watchkeeper.auth.tables import login_throttle
from watchkeeper.config import ConfigError, SessionSettings, Settings, load_settings

WRONG = "not-the-password"


def attempt(url: str, email: str, password: str, forwarded_for: str | None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as browser:
        page = browser.get("/login")
        return browser.post("/login", data={"email": email, "password": password,
                                            "csrf_token": form_token(page.text), "next": "/projects"})


def throttled_keys(settings: Settings, server_engine: object) -> set[str]:
    with server_engine.connect() as conn:  # type: ignore[attr-defined]
        return {row.key for row in conn.execute(login_throttle.select())}


def strict(settings: Settings, **changes: object) -> Settings:
    # Three failures lock an address; accounts are not locked here, so only the address limit answers.
    sessions = SessionSettings(max_failures_per_ip=3, max_failures_per_account=1000)
    return settings.model_copy(update={"sessions": sessions, **changes})


def test_behind_a_trusted_proxy_the_lock_out_is_per_real_client(settings: Settings) -> None:
    with run_server(strict(settings, trusted_proxies=["127.0.0.1/32"])) as server:
        ensure_admin(server)
        email, password = server.settings.admin_email, "admin-password-1"
        # nginx appends the peer it saw: a client claiming an address in its own header gains nothing.
        attacker = "203.0.113.5"
        codes = [attempt(server.url, email, WRONG, f"10.9.9.9, {attacker}").status_code for _ in range(3)]
        assert codes == [401, 401, 429]  # the third failure reaches the limit
        assert attempt(server.url, email, password, attacker).status_code == 429  # the attacker is locked out
        keys = throttled_keys(server.settings, server.runtime.engine)
        assert f"ip:{attacker}" in keys and "ip:127.0.0.1" not in keys and "ip:10.9.9.9" not in keys
        # ...and everyone else behind the same proxy still logs in.
        assert attempt(server.url, email, password, "198.51.100.7").status_code == 303


def test_without_trusted_proxies_x_forwarded_for_is_not_believed(settings: Settings) -> None:
    with run_server(strict(settings)) as server:
        ensure_admin(server)
        email = server.settings.admin_email
        # A client that makes up a new address for every try is still one address: its own.
        codes = [attempt(server.url, email, WRONG, f"203.0.113.{n}").status_code for n in range(3)]
        assert codes == [401, 401, 429]
        assert attempt(server.url, email, "admin-password-1", "198.51.100.7").status_code == 429
        keys = throttled_keys(server.settings, server.runtime.engine)
        assert "ip:127.0.0.1" in keys and not any(k.startswith("ip:203.") for k in keys)


def test_trusted_proxies_come_from_the_environment_and_a_typo_stops_start_up() -> None:
    loaded = load_settings(environ={"WATCHKEEPER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})
    assert loaded.trusted_proxies == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    with pytest.raises(ConfigError, match=r"trusted_proxies.*'10\.0\.0\.300'"):
        load_settings(environ={"WATCHKEEPER_TRUSTED_PROXIES": "127.0.0.1,10.0.0.300"})
