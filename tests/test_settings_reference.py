"""docs/settings.md, the settings reference made by scripts/settings_reference.py from config.py, is current
and names every setting by a variable the settings really read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from watchkeeper.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "settings_reference.py"
REFERENCE = ROOT / "docs" / "settings.md"


def check(output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--output", str(output)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_docs_settings_md_is_what_config_py_generates() -> None:
    result = check(REFERENCE)
    assert result.returncode == 0, result.stderr


def test_the_check_fails_with_a_clear_message_when_the_reference_is_stale(tmp_path: Path) -> None:
    stale = tmp_path / "settings.md"
    stale.write_text(REFERENCE.read_text().replace("WATCHKEEPER_INGEST__MAX_BODY_BYTES", "WATCHKEEPER_OLD_NAME"))
    result = check(stale)
    assert result.returncode == 1
    assert "is stale" in result.stderr and "scripts/settings_reference.py" in result.stderr
    assert "-| `ingest.max_body_bytes`" in result.stderr  # the diff shows what changed
    result = check(tmp_path / "missing.md")
    assert result.returncode == 1 and "is missing" in result.stderr


def _settings_paths(model: type[BaseModel], prefix: list[str]) -> list[list[str]]:
    paths = []
    for key, field in model.model_fields.items():
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _settings_paths(annotation, [*prefix, key])
        else:
            paths.append([*prefix, key])
    return paths


def test_every_setting_is_in_the_reference_with_a_variable_the_settings_read() -> None:
    text = REFERENCE.read_text()
    paths = _settings_paths(Settings, [])
    assert len(paths) > 60
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_.]+)` \|.*$", text, re.MULTILINE)}
    missing = [".".join(path) for path in paths if ".".join(path) not in rows]
    assert not missing, f"docs/settings.md lacks {missing}"
    unread = {}
    for path in paths:
        variables = re.findall(r"`(WATCHKEEPER_[A-Z_<>]+)`", rows[".".join(path)])
        if not variables:
            assert "config file" in rows[".".join(path)]  # says where to set it instead
            continue
        # <NAME>__<KEY> of a map of sections: one real entry and key.
        variable = variables[0].replace("<NAME>", "ATTACHMENT").replace("<KEY>", "PER_HOUR")
        try:
            load_settings(environ={variable: "not a value"})
        except ConfigError as exc:
            if "unknown setting" in str(exc):
                unread[variable] = str(exc)
    assert not unread, f"docs/settings.md names variables the settings do not read: {unread}"
