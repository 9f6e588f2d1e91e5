import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watchkeeper.app import Runtime, open_database
from watchkeeper.config import Settings
from watchkeeper.store.migrate import current_revisions, head_revisions, upgrade, upgrade_in_child
from watchkeeper.store.schema import load_all_tables


def test_migrations_build_exactly_the_tables_the_code_declares(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), load_all_tables())
    assert differences == []


def test_upgrading_a_current_database_changes_nothing(runtime: Runtime) -> None:
    upgrade(runtime.engine)
    assert current_revisions(runtime.engine) == head_revisions()


def test_serve_migrates_in_a_child_process_and_a_failure_names_the_cause(settings: Settings,
                                                                         tmp_path: Path) -> None:
    """`watchkeeper serve` migrates in a short-lived child (Alembic never loads in the server)."""
    engine = open_database(settings, migrate_in_child=True)
    assert current_revisions(engine) == head_revisions()
    engine.dispose()
    not_a_database = tmp_path / "not-a-database.db"
    not_a_database.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(RuntimeError, match=r"database migration failed:(.|\n)*file is not a database"):
        upgrade_in_child(f"sqlite:///{not_a_database}")


def test_the_server_process_does_not_import_alembic(settings: Settings) -> None:
    code = ("import sys; from watchkeeper.app import create_app, build_runtime; "
            "import watchkeeper.observability, watchkeeper.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'cryptography')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
