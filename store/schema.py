"""The store's tables, all on one ``metadata``: the audit trail (``audit_records`` and its chain head
``audit_chain``), caseworkers' ``feedback`` and the nightly ``batch_runs`` / ``batch_scores``.

This is the schema the code expects; the database gets it only through the migrations in
``store/migrations`` (:func:`store.migrate.upgrade`). Change a table here and add a migration that
makes the same change: ``tests/test_store_migrations.py`` compares the two and fails on any drift.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

audit_records = Table(
    "audit_records", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("kind", String(16), nullable=False),          # "score" or "batch"
    Column("household_id", String(64), nullable=False),
    Column("as_of", String(10), nullable=False),
    Column("model_versions", String(512), nullable=False),  # "name:version,…" for filtering
    Column("flagged", Boolean, nullable=False),          # flagged for any risk
    Column("models", Text, nullable=False),              # JSON: [{"name", "version"}]
    Column("request", Text, nullable=False),             # JSON: the bundle as received and validated
    Column("scores", Text, nullable=False),              # JSON: per risk raw_score, base_value, contributions
    Column("response", Text, nullable=False),            # JSON: exactly what was returned
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Index("ix_audit_household", "household_id"),
    Index("ix_audit_created", "created_at"),
)

audit_chain = Table(
    "audit_chain", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("head_hash", String(64), nullable=False),
)

feedback_table = Table(
    "feedback", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("feedback_id", String(32), nullable=False, unique=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("household_id", String(64), nullable=False),
    Column("as_of", String(10), nullable=False),            # the prompting request's as_of
    Column("visited_on", String(10), nullable=False),
    Column("findings", String(256), nullable=False),        # comma-separated, sorted
    Column("flagged_risks", String(256), nullable=False),   # what the prompting request flagged
    Column("model_versions", String(512), nullable=False),  # "name:version,…" of the prompting request
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_feedback_household", "household_id"),
)

batch_runs = Table(
    "batch_runs", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("as_of", String(10), nullable=False),
    Column("models", Text, nullable=False),          # JSON: [{"name", "version"}]
    Column("households", Integer, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("output", Text, nullable=False),          # where the batch wrote its files
)

batch_scores = Table(
    "batch_scores", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("scores", Text, nullable=False),          # JSON: {risk: [probability, band, flagged]}
    Index("ix_batch_scores_household", "household_id"),
)
