"""alerting: receivers and the routing tree in the database, edited in the web UI and the REST API

Seeded with what used to be the built-in default (every alert to the server log, grouped by alert name
and project), so a server without `alerting.config_file` behaves as before until an admin adds a channel.

Revision ID: 0011_h_notify
Revises: 0010
Create Date: 2026-12-07 14:40:00
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0011_h_notify"
down_revision = "0011_h_alerting"
branch_labels = None
depends_on = None


def upgrade() -> None:
    receivers = op.create_table(
        "notification_receivers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("integrations", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_receivers")),
        sa.UniqueConstraint("name", name=op.f("uq_notification_receivers_name")),
    )
    routes = op.create_table(
        "notification_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["notification_routes.id"],
                                name=op.f("fk_notification_routes_parent_id_notification_routes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_routes")),
    )
    op.create_index(op.f("ix_notification_routes_parent_id"), "notification_routes", ["parent_id"], unique=False)
    version = op.create_table(
        "notification_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_config")),
    )
    now = time.time()
    op.bulk_insert(receivers, [{"name": "log", "integrations": '{"log_configs":[{}]}',
                                "created_at": now, "updated_at": now}])
    op.bulk_insert(routes, [{"parent_id": None, "position": 0,
                             "settings": '{"receiver":"log","group_by":["alertname","project"]}',
                             "created_at": now, "updated_at": now}])
    op.bulk_insert(version, [{"id": 1, "version": 1, "updated_at": now}])


def downgrade() -> None:
    op.drop_table("notification_config")
    op.drop_index(op.f("ix_notification_routes_parent_id"), table_name="notification_routes")
    op.drop_table("notification_routes")
    op.drop_table("notification_receivers")
