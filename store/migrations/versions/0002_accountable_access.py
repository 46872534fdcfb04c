"""Accountable access: who asked (``caller``), the access log, payloads hashed apart so they can be
purged, the household's town for keys limited to towns, and signed-out sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05

Adds nullable columns only (records written before keep their meaning: their ``payload_hash`` is
NULL, so their hash still covers the payload itself) and new tables; the access log's chain head
is row 2 of ``audit_chain``, made by ``AuditStore.create`` like row 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("audit_records") as t:
        t.add_column(sa.Column("caller", sa.Text(), nullable=True))
        t.add_column(sa.Column("town", sa.String(64), nullable=True))
        t.add_column(sa.Column("payload_hash", sa.String(64), nullable=True))
        t.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("feedback") as t:
        t.add_column(sa.Column("caller", sa.Text(), nullable=True))
    with op.batch_alter_table("batch_scores") as t:
        t.add_column(sa.Column("town", sa.String(64), nullable=True))
    op.create_table(
        "access_log",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_access_created", "access_log", ["created_at"])
    op.create_index("ix_access_key", "access_log", ["key_id"])
    op.create_table(
        "access_targets",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
        sa.Column("target", sa.String(64), primary_key=True),
    )
    op.create_index("ix_access_targets_target", "access_targets", ["target"])
    op.create_table(
        "revoked_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revoked_sessions")
    op.drop_index("ix_access_targets_target", "access_targets")
    op.drop_table("access_targets")
    op.drop_index("ix_access_key", "access_log")
    op.drop_index("ix_access_created", "access_log")
    op.drop_table("access_log")
    with op.batch_alter_table("batch_scores") as t:
        t.drop_column("town")
    with op.batch_alter_table("feedback") as t:
        t.drop_column("caller")
    with op.batch_alter_table("audit_records") as t:
        for c in ("purged_at", "payload_hash", "town", "caller"):
            t.drop_column(c)
