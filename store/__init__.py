"""What the service keeps: the audit trail (hash-chained), caseworkers' feedback and the nightly
batches' score history, in one database (SQLite by default, PostgreSQL in production). This package
owns those tables and their migrations; nothing above it writes SQL."""
