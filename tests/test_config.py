"""Settings: YAML file, environment, *_FILE secrets, profiles, nested keys, and errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.config import ConfigError, load_settings


def test_defaults_without_any_configuration() -> None:
    settings = load_settings(environ={})
    assert (settings.profile, settings.host, settings.port) == ("development", "127.0.0.1", 8000)
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.sqlalchemy_url.startswith("sqlite:///") and settings.sqlalchemy_url.endswith("watchkeeper.db")


def test_yaml_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "watchkeeper.yaml"
    config.write_text("port: 9000\nhost: 0.0.0.0\nretention:\n  default_days: 30\n  batch_size: 10\n")
    settings = load_settings(config, environ={"WATCHKEEPER_PORT": "9100", "WATCHKEEPER_RETENTION__BATCH_SIZE": "20"})
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.base_url == "http://127.0.0.1:9100"
    # retention.default_days is the old name of the four error classes' settings
    assert (settings.retention.error_events_days, settings.retention.batch_size) == (30, 20)
    assert load_settings(config, environ={"WATCHKEEPER_PORT": "9100"}, overrides={"port": 9200}).port == 9200


def test_the_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "settings.yml"
    config.write_text("public_url: https://wk.example.com/\n")
    settings = load_settings(environ={"WATCHKEEPER_CONFIG": str(config)})
    assert settings.base_url == "https://wk.example.com"


def test_nested_environment_variables_set_section_keys() -> None:
    settings = load_settings(
        environ={
            "WATCHKEEPER_INGEST__MAX_BODY_BYTES": "1234",
            "WATCHKEEPER_WRITER__SQLITE_SYNCHRONOUS": "NORMAL",
            "WATCHKEEPER_INGEST__DEFAULT_EVENTS_PER_MINUTE": "60",
        }
    )
    assert settings.ingest.max_body_bytes == 1234
    assert settings.ingest.default_events_per_minute == 60
    assert settings.ingest.max_event_bytes == 1024 * 1024  # siblings keep their defaults
    assert settings.writer.sqlite_synchronous == "NORMAL"


def test_secrets_can_be_read_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "admin_password"
    secret.write_text("s3cret-from-file\n")
    key = tmp_path / "key"
    key.write_text("k" * 40)
    settings = load_settings(
        environ={"WATCHKEEPER_ADMIN_PASSWORD_FILE": str(secret), "WATCHKEEPER_SECRET_KEY_FILE": str(key)}
    )
    assert settings.admin_password is not None and settings.admin_password.get_secret_value() == "s3cret-from-file"
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == "k" * 40
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError, match="WATCHKEEPER_SECRET_KEY_FILE"):
        load_settings(environ={"WATCHKEEPER_SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_a_setting_whose_name_ends_in_file_is_its_own_value(tmp_path: Path) -> None:
    routing = tmp_path / "alertmanager.yml"
    routing.write_text("route: {receiver: log}\n")
    settings = load_settings(environ={"WATCHKEEPER_ALERTING__CONFIG_FILE": str(routing),
                                      "WATCHKEEPER_ALERTING__RULES_FILE": str(tmp_path / "rules.yml")})
    assert settings.alerting.config_file == routing
    assert settings.alerting.rules_file == tmp_path / "rules.yml"


def test_production_denies_private_targets_and_development_allows_them(tmp_path: Path) -> None:
    assert load_settings(environ={}).outbound.allow_private_targets is True
    production = load_settings(environ={"WATCHKEEPER_PROFILE": "production"})
    assert production.outbound.allow_private_targets is False
    assert production.log_level == "info"
    config = tmp_path / "c.yaml"
    config.write_text("profile: production\noutbound:\n  allow_private_targets: true\n")
    assert load_settings(config, environ={}).outbound.allow_private_targets is True
    assert (
        load_settings(
            environ={"WATCHKEEPER_PROFILE": "development", "WATCHKEEPER_OUTBOUND__ALLOW_PRIVATE_TARGETS": "false"}
        ).outbound.allow_private_targets
        is False
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"WATCHKEEPER_PORT": "abc"}, "port"),
        ({"WATCHKEEPER_PORT": "70000"}, "port"),
        ({"WATCHKEEPER_BOGUS": "1"}, "bogus"),
        ({"WATCHKEEPER_INGEST__MAX_BODY_SIZE": "1"}, "ingest.max_body_size"),
        ({"WATCHKEEPER_INGEST__MAX_BODY_BYTES": "-1"}, "ingest.max_body_bytes"),
        ({"WATCHKEEPER_PROFILE": "prod"}, "profile"),
        ({"WATCHKEEPER_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_bad_environment_values_name_the_key(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ)
    assert f"'{named}'" in str(error.value)


def test_bad_config_files_name_the_key_or_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("retention:\n  default_dayz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'retention.default_dayz' \(from config file\)"):
        load_settings(config, environ={})
    config.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(config, environ={})
    config.write_text("port: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_settings(tmp_path / "nope.yaml", environ={})
