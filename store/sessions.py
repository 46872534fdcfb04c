"""Auditors' sessions ended by signing out before they expired (``revoked_sessions``), shared by
every worker. Only a hash of the session is kept, until the session would have expired; rows past
that are dropped whenever another session is revoked."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from store.schema import revoked_sessions


def revoke(engine: Engine, session_hash: str, expires_at: dt.datetime) -> None:
    """Marks the session revoked until ``expires_at``; revoking it twice changes nothing."""
    with engine.begin() as conn:
        conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at < dt.datetime.now(dt.UTC)))
        try:
            with conn.begin_nested():
                conn.execute(insert(revoked_sessions).values(session_hash=session_hash, expires_at=expires_at))
        except IntegrityError:  # signed out twice
            pass


def is_revoked(engine: Engine, session_hash: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(revoked_sessions.c.session_hash)
                            .where(revoked_sessions.c.session_hash == session_hash)).first() is not None
