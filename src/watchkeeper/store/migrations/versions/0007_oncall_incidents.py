"""alerting: on-call schedules, escalation policies, incidents

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerting_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alerting_secrets")),
    )
    op.create_table(
        "oncall_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("layers", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_oncall_schedules_name")),
    )
    op.create_table(
        "alert_incident_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("severities", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alert_incident_settings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_alert_incident_settings")),
    )
    op.create_table(
        "escalation_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("repeat", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_escalation_policies_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_escalation_policies_name")),
        sa.UniqueConstraint("project_id", name=op.f("uq_escalation_policies_project_id")),
    )
    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.Double(), nullable=False),
        sa.Column("ends_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["oncall_schedules.id"],
            name=op.f("fk_oncall_overrides_schedule_id_oncall_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oncall_overrides_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
    )
    op.create_index(op.f("ix_oncall_overrides_schedule_id"), "oncall_overrides", ["schedule_id"], unique=False)
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("group_key", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("impact_started_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("acknowledged_at", sa.Double(), nullable=True),
        sa.Column("investigating_at", sa.Double(), nullable=True),
        sa.Column("mitigated_at", sa.Double(), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.Column("postmortem", sa.Text(), nullable=True),
        sa.Column("escalation_policy_id", sa.Integer(), nullable=True),
        sa.Column("escalation_step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("escalation_round", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_escalation_at", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_alert_incidents_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["escalation_policy_id"],
            ["escalation_policies.id"],
            name=op.f("fk_alert_incidents_escalation_policy_id_escalation_policies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_alert_incidents_project_id_projects"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_incidents")),
    )
    op.create_index(op.f("ix_alert_incidents_group_key"), "alert_incidents", ["group_key"], unique=False)
    op.create_index(
        op.f("ix_alert_incidents_next_escalation_at"), "alert_incidents", ["next_escalation_at"], unique=False
    )
    op.create_index(op.f("ix_alert_incidents_project_id"), "alert_incidents", ["project_id"], unique=False)
    op.create_table(
        "alert_incident_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_alert_incident_events_actor_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_incident_events_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_incident_events")),
    )
    op.create_index(
        op.f("ix_alert_incident_events_incident_id"), "alert_incident_events", ["incident_id"], unique=False
    )
    op.create_table(
        "alert_incident_links",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_incident_links_incident_id_alert_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_alert_incident_links")),
    )
    op.create_table(
        "alert_occurrences",
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("starts_at", sa.Double(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["alert_incidents.id"],
            name=op.f("fk_alert_occurrences_incident_id_alert_incidents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("fingerprint", "starts_at", name=op.f("pk_alert_occurrences")),
    )
    op.create_index(op.f("ix_alert_occurrences_incident_id"), "alert_occurrences", ["incident_id"], unique=False)
    op.create_index("ix_alert_occurrences_open", "alert_occurrences", ["resolved_at"], unique=False)
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_index("ix_alert_occurrences_open", table_name="alert_occurrences")
    op.drop_index(op.f("ix_alert_occurrences_incident_id"), table_name="alert_occurrences")
    op.drop_table("alert_occurrences")
    op.drop_table("alert_incident_links")
    op.drop_index(op.f("ix_alert_incident_events_incident_id"), table_name="alert_incident_events")
    op.drop_table("alert_incident_events")
    op.drop_index(op.f("ix_alert_incidents_project_id"), table_name="alert_incidents")
    op.drop_index(op.f("ix_alert_incidents_next_escalation_at"), table_name="alert_incidents")
    op.drop_index(op.f("ix_alert_incidents_group_key"), table_name="alert_incidents")
    op.drop_table("alert_incidents")
    op.drop_index(op.f("ix_oncall_overrides_schedule_id"), table_name="oncall_overrides")
    op.drop_table("oncall_overrides")
    op.drop_table("escalation_policies")
    op.drop_table("alert_incident_settings")
    op.drop_table("oncall_schedules")
    op.drop_table("alerting_secrets")
    # ### end Alembic commands ###
