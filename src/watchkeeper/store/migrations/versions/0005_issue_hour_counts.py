"""errors: events per issue and hour, for charts over days (filled from the per-minute counts)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issue_hour_counts",
        sa.Column("issue_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_issue_hour_counts_issue_id_issues"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("issue_id", "hour", name=op.f("pk_issue_hour_counts")),
    )
    # Integer columns: `/` is integer division on SQLite and PostgreSQL alike.
    op.execute(
        "INSERT INTO issue_hour_counts (issue_id, hour, count) "
        "SELECT issue_id, minute / 60, SUM(count) FROM issue_minute_counts GROUP BY issue_id, minute / 60"
    )


def downgrade() -> None:
    op.drop_table("issue_hour_counts")
