from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watchkeeper.app import Runtime
from watchkeeper.store.migrate import current_revision, head_revision, upgrade
from watchkeeper.store.schema import load_all_tables


def test_migrations_build_exactly_the_tables_the_code_declares(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), load_all_tables())
    assert differences == []


def test_upgrading_a_current_database_changes_nothing(runtime: Runtime) -> None:
    upgrade(runtime.engine)
    assert current_revision(runtime.engine) == head_revision()
