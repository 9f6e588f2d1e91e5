"""errors: issue_tags stored in its primary key's order on SQLite (WITHOUT ROWID)

Each ingest batch adds to the tag counts of the issues it touches. In a rowid table an issue's tag rows
lie wherever they were first inserted, and the primary key is a second B-tree beside them: a batch of 32
events dirtied ~87 random issue_tags pages, a third of all the pages it wrote. Clustered by (issue_id,
key, value) an issue's tags share a few pages and there is one B-tree: ~40 pages, and the WAL written
per batch fell by a fifth (bench/writer_batches.py). PostgreSQL is unchanged.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 02:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.rename_table("issue_tags", "issue_tags_old")
    op.create_table(
        "issue_tags",
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("times_seen", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], name=op.f("fk_issue_tags_issue_id_issues"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("issue_id", "key", "value", name=op.f("pk_issue_tags")),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) "
        "SELECT issue_id, key, value, times_seen, first_seen, last_seen FROM issue_tags_old "
        "ORDER BY issue_id, key, value"
    )
    op.drop_table("issue_tags_old")


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
