"""Each domain migrates on its own Alembic branch, in a folder beside its code: a revision added there is
picked up with no shared file touched, and two domains built in parallel never collide."""

from __future__ import annotations

import tomllib
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from watchkeeper.app import Runtime
from watchkeeper.domains import DOMAINS, migration_locations
from watchkeeper.store import migrate
from watchkeeper.store.engine import for_writing
from watchkeeper.store.migrate import current_revisions, head_revisions, make_revision, upgrade, version_locations

ROOT = Path(__file__).parents[2]
REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = {labels}
depends_on = None


def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    pass
'''


def write_revision(folder: Path, filename: str, revision: str, down: str, *, label: str | None = None,
                   table: str | None = None) -> None:
    folder.mkdir(exist_ok=True)
    body = f'op.create_table("{table}", sa.Column("id", sa.Integer(), primary_key=True))' if table else "pass"
    (folder / filename).write_text(REVISION.format(revision=revision, down=down, upgrade=body,
                                                   labels=repr((label,)) if label else None))


def branch_point() -> str:
    """The newest revision of the shared history, where every domain's branch starts."""
    roots = {ScriptDirectory.from_config(migrate._config()).get_revision(f"{name}_0000").down_revision
             for name in DOMAINS}
    (point,) = roots
    assert isinstance(point, str)
    return point


def test_every_domain_has_its_branch_from_the_shared_head() -> None:
    script = ScriptDirectory.from_config(migrate._config())
    point = branch_point()
    shared = ScriptDirectory(str(migrate.MIGRATIONS), version_locations=[str(migrate.SHARED_VERSIONS)])
    assert shared.get_heads() == [point]  # the end of the shared history: a new revision there would fork it
    for name, folder in zip(DOMAINS, migration_locations(), strict=True):
        root = script.get_revision(f"{name}_0000")
        assert root is not None and root.branch_labels == {name} and Path(root.path).parent == folder
    assert {f"{name}_0000" for name in DOMAINS} <= head_revisions()


def test_two_domains_built_in_parallel_each_add_a_revision(runtime: Runtime, tmp_path: Path) -> None:
    """Both write their first revision, even under the same file name; neither edits a shared file."""
    point = branch_point()
    inventory, billing = tmp_path / "inventory", tmp_path / "billing"
    for name, folder in (("inventory", inventory), ("billing", billing)):
        write_revision(folder, "0000_branch_root.py", f"{name}_0000", point, label=name)
        write_revision(folder, "0001_first.py", f"{name}_0001", f"{name}_0000", table=f"{name}_items")
    shared = {path: path.read_bytes() for folder in version_locations() for path in folder.glob("*.py")}
    engine = for_writing(runtime.engine)

    upgrade(engine, extra=[inventory, billing])

    assert {"inventory_items", "billing_items"} <= set(inspect(engine).get_table_names())
    at = current_revisions(engine)
    assert {"inventory_0001", "billing_0001"} <= at and at == head_revisions([inventory, billing])
    assert at - {"inventory_0001", "billing_0001"} == head_revisions()  # the other branches stay where they were
    assert {path: path.read_bytes() for folder in version_locations() for path in folder.glob("*.py")} == shared

    # The domain's next revision goes on its own branch, after its newest.
    write_revision(inventory, "0002_second.py", "inventory_0002", "inventory_0001", table="inventory_counts")
    upgrade(engine, extra=[inventory, billing])
    assert "inventory_counts" in inspect(engine).get_table_names()
    assert "inventory_0002" in current_revisions(engine) and "inventory_0001" not in current_revisions(engine)


def test_make_revision_drafts_the_next_revision_in_the_branch_folder(runtime: Runtime, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    write_revision(inventory, "0000_branch_root.py", "inventory_0000", branch_point(), label="inventory")
    engine = for_writing(runtime.engine)
    upgrade(engine, extra=[inventory])

    path = make_revision(engine, "inventory", "stock levels", extra=[inventory])

    assert path == inventory / "0001_stock_levels.py"
    assert 'revision = "inventory_0001"' in path.read_text().replace("'", '"')
    assert 'down_revision = "inventory_0000"' in path.read_text().replace("'", '"')
    upgrade(engine, extra=[inventory])
    assert "inventory_0001" in current_revisions(engine)


def test_the_package_ships_every_migration_folder() -> None:
    source = ROOT / "src" / "watchkeeper"
    installed = migrate.MIGRATIONS.parents[1]  # the source itself, or site-packages in the compiled build's run
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["watchkeeper"]
    shipped = {path.relative_to(source) for pattern in patterns for path in source.glob(pattern)}
    revisions = {path.relative_to(source) for folder in version_locations()
                 for path in (source / folder.relative_to(installed)).glob("*.py")}
    assert len(revisions) >= len(DOMAINS) + 11
    assert revisions - shipped == set()
    assert {Path("store/migrations/env.py"), Path("store/migrations/script.py.mako")} <= shipped
