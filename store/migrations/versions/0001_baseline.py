"""Baseline: the five tables as ``metadata.create_all`` made them before the store had migrations.

Revision ID: 0001
Revises:
Create Date: 2026-12-05

Written out in full, never importing store.schema: a migration keeps its meaning when the schema
changes later. ``store.migrate`` stamps a database made before migrations with this revision once it
has checked that its tables are these, and creates from here (``TABLES``) the tables such a database
may lack because the old code only created those whose module the process had imported.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# seq is INTEGER on SQLite (an alias of the rowid), BIGINT elsewhere
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def create_audit_records() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.String(10), nullable=False),
        sa.Column("model_versions", sa.String(512), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index("ix_audit_household", "audit_records", ["household_id"])
    op.create_index("ix_audit_created", "audit_records", ["created_at"])


def create_audit_chain() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
    )


def create_feedback() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("feedback_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.String(10), nullable=False),
        sa.Column("visited_on", sa.String(10), nullable=False),
        sa.Column("findings", sa.String(256), nullable=False),
        sa.Column("flagged_risks", sa.String(256), nullable=False),
        sa.Column("model_versions", sa.String(512), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("feedback_id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_index("ix_feedback_household", "feedback", ["household_id"])


def create_batch_runs() -> None:
    op.create_table(
        "batch_runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.String(10), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
    )


def create_batch_scores() -> None:
    op.create_table(
        "batch_scores",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False),
    )
    op.create_index("ix_batch_scores_household", "batch_scores", ["household_id"])


TABLES: dict[str, Callable[[], None]] = {
    "audit_records": create_audit_records,
    "audit_chain": create_audit_chain,
    "feedback": create_feedback,
    "batch_runs": create_batch_runs,
    "batch_scores": create_batch_scores,
}


def upgrade() -> None:
    for create in TABLES.values():
        create()


def downgrade() -> None:
    # going below the baseline would drop the audit trail; that is never a migration's job
    raise NotImplementedError("the baseline is not reversible: it would drop the audit trail and the feedback")
