"""uptime: status-page component SLAs and what the app pages need

A status-page component may carry an SLA target (percent), like a monitor. The monitors list page
counts a project's monitors by status and filters by status or type among 10,000 monitors, so those
two get indexes that start with the project.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("status_components", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_target", sa.Double(), nullable=True))
    op.create_index("ix_monitors_project_status", "monitors", ["project_id", "status"])
    op.create_index("ix_monitors_project_type", "monitors", ["project_id", "type"])


def downgrade() -> None:
    op.drop_index("ix_monitors_project_type", table_name="monitors")
    op.drop_index("ix_monitors_project_status", table_name="monitors")
    with op.batch_alter_table("status_components", schema=None) as batch_op:
        batch_op.drop_column("sla_target")
