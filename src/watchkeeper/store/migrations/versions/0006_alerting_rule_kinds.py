"""alerting: ratio/average/percentile/anomaly rules, time intervals

Rule kinds and aggregations live in the rules' JSON spec (no column changes). What changes is how
rounds read alerts: a dispatch round reads only the alerts changed since its last look (by
`updated_at`), and the full round forgets resolved alerts by `ends_at`, so both get an index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:50:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_alerts_updated_at"), "alerts", ["updated_at"])
    op.create_index(op.f("ix_alerts_ends_at"), "alerts", ["ends_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_ends_at"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_updated_at"), table_name="alerts")
