"""uptime: one definition of uptime (first result, pauses) and neutral automatic incidents

Uptime and SLA count time from a monitor's first check result (or ping), less paused periods and
maintenance (docs/uptime.md), so a monitor keeps when that was and when it was paused. Monitors already
checked count from their creation; monitors paused now from their last change. A status page keeps the
title and message of the incidents it opens automatically (NULL: the neutral default).

Revision ID: 0011_status
Revises: 0010
Create Date: 2026-12-07 14:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_status"
down_revision = "0011_h_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_result_at", sa.Double(), nullable=True))
    op.execute("UPDATE monitors SET first_result_at = created_at WHERE last_check_at IS NOT NULL")
    op.create_table(
        "monitor_pauses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitors.id"], name=op.f("fk_monitor_pauses_monitor_id_monitors"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_pauses")),
    )
    op.create_index("ix_monitor_pauses_monitor_started", "monitor_pauses", ["monitor_id", "started_at"])
    op.execute("INSERT INTO monitor_pauses (monitor_id, started_at) SELECT id, updated_at FROM monitors "
               "WHERE paused = true")
    with op.batch_alter_table("status_pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_title", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("incident_message", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("status_pages", schema=None) as batch_op:
        batch_op.drop_column("incident_message")
        batch_op.drop_column("incident_title")
    op.drop_index("ix_monitor_pauses_monitor_started", table_name="monitor_pauses")
    op.drop_table("monitor_pauses")
    with op.batch_alter_table("monitors", schema=None) as batch_op:
        batch_op.drop_column("first_result_at")
