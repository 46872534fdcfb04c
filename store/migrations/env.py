"""Alembic's environment for the store: online only, on the connection :mod:`store.migrate` passes in
``config.attributes["connection"]``, already inside the transaction that holds the schema lock, so
the migrations, the ``alembic_version`` row and the lock all end at that transaction's commit.

There is no alembic.ini: :func:`store.migrate.alembic_config` builds the configuration in code.
"""

from __future__ import annotations

from alembic import context

from store.schema import metadata  # for autogenerate (comparing the code's schema with a database) only

connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError("the store's migrations run through store.migrate.upgrade(engine), which passes a connection "
                       "in config.attributes['connection']; offline (SQL script) mode is not supported")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():  # joins the caller's transaction: nothing commits until it does
    context.run_migrations()
