"""The store's tables, all on one ``metadata``: the audit trail (``audit_records``), the access log
(``access_log`` and its ``access_targets``), their chain heads (``audit_chain``: row 1 the audit
trail's, row 2 the access log's), caseworkers' ``feedback``, the nightly ``batch_runs`` /
``batch_scores``, the auditors' signed-out sessions (``revoked_sessions``), caseworkers' needs
``assessments`` and each household's plan (``plan_measures`` and their ``plan_events``).

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
    # since 0002: who asked, the household's town (for keys limited to towns), the hash of the personal
    # payload (request, scores, response; NULL on records written before: their hash covers the
    # payload itself) and when that payload was purged (then the three columns are empty)
    Column("caller", Text, nullable=True),               # JSON: {"role", "key_id"}
    Column("town", String(64), nullable=True),
    Column("payload_hash", String(64), nullable=True),
    Column("purged_at", DateTime(timezone=True), nullable=True),
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
    Column("caller", Text, nullable=True),                  # JSON: {"role", "key_id"}; since 0002
    Index("ix_feedback_household", "household_id"),
)

# Every read of personal data, append-only and hash-chained like the audit trail (head: audit_chain row 2).
access_log = Table(
    "access_log", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("targets", Text, nullable=False),        # JSON: {"households": [...], "requests": [...]}
    Column("result_count", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False),
    Index("ix_access_created", "created_at"),
    Index("ix_access_key", "key_id"),
)

# one row per household or request id an access event touched: what the access search looks up
access_targets = Table(
    "access_targets", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("target", String(64), primary_key=True),
    Index("ix_access_targets_target", "target"),
)

# auditors' sessions ended by "sign out" before they expired; a row may go once expires_at is past
revoked_sessions = Table(
    "revoked_sessions", metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
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
    Column("town", String(64), nullable=True),       # since 0002: for keys limited to towns
    Index("ix_batch_scores_household", "household_id"),
)

# since 0003: caseworkers' needs assessments and each household's plan (一户一策); append-only
assessments = Table(
    "assessments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("assessment_id", String(32), nullable=False, unique=True),
    Column("request_id", String(64), nullable=False),       # the score request the visit followed
    Column("household_id", String(64), nullable=False),
    Column("town", String(64), nullable=True),
    Column("assessed_on", String(10), nullable=False),
    Column("assessor", String(64), nullable=False),         # the caseworker's pseudonymous id, as given
    Column("instrument_version", String(32), nullable=False),
    Column("domains", Text, nullable=False),                # JSON: [{"domain", "level", "evidence"}]
    Column("note", Text, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("caller", Text, nullable=False),                 # JSON: {"role", "key_id"}
    Index("ix_assessments_household", "household_id"),
)

plan_measures = Table(
    "plan_measures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("measure_id", String(32), nullable=False, unique=True),
    Column("household_id", String(64), nullable=False),
    Column("town", String(64), nullable=True),
    Column("measure", String(64), nullable=False),          # a [[measure]] id of the policy file
    Column("owner", String(32), nullable=False),            # the owner department's code
    Column("due", String(10), nullable=False),
    Column("proposed_because", Text, nullable=False),       # JSON: what proposed it
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("caller", Text, nullable=False),
    Index("ix_plan_measures_household", "household_id"),
)

# every move of a plan measure's status; the measure's status is its latest event's (highest id)
plan_events = Table(
    "plan_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("measure_id", String(32), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("happened_on", String(10), nullable=False),      # the event's date as the caseworker gives it
    Column("note", Text, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("caller", Text, nullable=False),
    Index("ix_plan_events_measure", "measure_id"),
    Index("ix_plan_events_household", "household_id"),
)
