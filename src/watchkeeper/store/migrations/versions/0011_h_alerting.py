"""alerting: escalation policies belong to teams; alert occurrences keep the page of their cause; the
default rule pack alerts on failed heartbeats and regressed issues

- escalation_policies.team_id: the team that owns a policy (members read and change their teams'
  policies; NULL = an administrators' policy). An existing policy of a project goes to the project's
  first team. Names are unique per team, not across teams.
- alert_occurrences.source: the page of what an alert is about (its issue, monitor or project; or the
  generatorURL an outside alert came with), shown on the incident page and in pages.
- Projects that got the default rule pack before these two rules existed get them now (unless they
  have a rule of that name).

Revision ID: 0011_h_alerting
Revises: 0010
Create Date: 2026-12-07 15:00:00
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0011_h_alerting"
down_revision = "0011_firsthour"
branch_labels = None
depends_on = None

# As alerting.rules.DEFAULT_PACK stores them (spec: severity, then the event spec's fields).
NEW_DEFAULT_RULES = (
    ("Heartbeat failed",
     '{"severity":"high","signal":"heartbeat.failed","where":[],"resolve_on":null,"resolve_after_seconds":null}',
     '{"summary":"{{ signal.name }} reported a failure","description":"{{ signal.error }}"}'),
    ("Issue regressed",
     '{"severity":"medium","signal":"issue.regression","where":[],"resolve_on":null,"resolve_after_seconds":null}',
     '{"summary":"Regression in {{ labels.project }}: {{ signal.title }}"}'),
)


def upgrade() -> None:
    with op.batch_alter_table("escalation_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_escalation_policies_name", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_escalation_policies_team_id_name"), ["team_id", "name"])
        batch_op.create_index(batch_op.f("ix_escalation_policies_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_escalation_policies_team_id_teams"), "teams", ["team_id"], ["id"],
                                    ondelete="CASCADE")
    with op.batch_alter_table("alert_occurrences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=2000), nullable=True))

    conn = op.get_bind()
    conn.execute(sa.text(
        "UPDATE escalation_policies SET team_id = (SELECT MIN(team_id) FROM project_teams "
        "WHERE project_teams.project_id = escalation_policies.project_id) WHERE project_id IS NOT NULL"))
    now = time.time()
    for name, spec, annotations in NEW_DEFAULT_RULES:
        conn.execute(sa.text(
            "INSERT INTO alert_rules (project_id, name, kind, spec, labels, annotations, enabled, managed_by, "
            "created_at, updated_at) SELECT p.project_id, CAST(:name AS VARCHAR(200)), 'event', :spec, '{}', "
            ":annotations, :enabled, 'default', :now, :now FROM alert_rule_packs p WHERE NOT EXISTS "
            "(SELECT 1 FROM alert_rules r WHERE r.project_id = p.project_id AND r.name = CAST(:name AS VARCHAR(200)))"),
            {"name": name, "spec": spec, "annotations": annotations, "enabled": True, "now": now})


def downgrade() -> None:
    with op.batch_alter_table("alert_occurrences", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("escalation_policies", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_escalation_policies_team_id_teams"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_escalation_policies_team_id"))
        batch_op.drop_constraint(batch_op.f("uq_escalation_policies_team_id_name"), type_="unique")
        batch_op.create_unique_constraint("uq_escalation_policies_name", ["name"])
        batch_op.drop_column("team_id")
