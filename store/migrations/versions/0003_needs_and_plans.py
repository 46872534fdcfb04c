"""From discovery to help: caseworkers' needs assessments and each household's plan (一户一策).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

New tables only, all append-only by the code that writes them: ``assessments`` (a visit's
structured answers, per domain a level and evidence, kept with the assessor and the date),
``plan_measures`` (the measures of a household's plan, each with an owner department and a due
date) and ``plan_events`` (every move of a measure's status, with its actor and date; a measure's
status is its latest event's).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("assessment_id", sa.String(32), nullable=False, unique=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("town", sa.String(64), nullable=True),
        sa.Column("assessed_on", sa.String(10), nullable=False),
        sa.Column("assessor", sa.String(64), nullable=False),
        sa.Column("instrument_version", sa.String(32), nullable=False),
        sa.Column("domains", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
    )
    op.create_index("ix_assessments_household", "assessments", ["household_id"])
    op.create_table(
        "plan_measures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("measure_id", sa.String(32), nullable=False, unique=True),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("town", sa.String(64), nullable=True),
        sa.Column("measure", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("due", sa.String(10), nullable=False),
        sa.Column("proposed_because", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
    )
    op.create_index("ix_plan_measures_household", "plan_measures", ["household_id"])
    op.create_table(
        "plan_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("measure_id", sa.String(32), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("happened_on", sa.String(10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
    )
    op.create_index("ix_plan_events_measure", "plan_events", ["measure_id"])
    op.create_index("ix_plan_events_household", "plan_events", ["household_id"])


def downgrade() -> None:
    op.drop_index("ix_plan_events_household", "plan_events")
    op.drop_index("ix_plan_events_measure", "plan_events")
    op.drop_table("plan_events")
    op.drop_index("ix_plan_measures_household", "plan_measures")
    op.drop_table("plan_measures")
    op.drop_index("ix_assessments_household", "assessments")
    op.drop_table("assessments")
