"""Which worker is fulfilling a session right now.

On PostgreSQL a run holds a session-level advisory lock on its own database connection. If the
worker dies (SIGKILL, OOM, a lost machine), PostgreSQL drops the lock with the connection, so
"claimed" always means "a live process is working on it". The relay uses that to hand the work
of a dead worker to another within seconds (relay.py), and the email step uses it to take over
a claim whose owner is gone instead of waiting for its lease.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DatabaseError, connection

# pg_try_advisory_lock(namespace, hashtext(session id)): the two-key form, so that these locks
# never collide with the relay's single-key lock.
CLAIM_NAMESPACE = 0x66756C66  # "fulf"

_holding: ContextVar[str | None] = ContextVar("fulfilment_claim", default=None)
# Without PostgreSQL (the embedded default) there is one process: the claimed sessions, in memory
# (a set that a release empties again, not a lock per session ever seen).
_local_claims: set[str] = set()
_local_guard = threading.Lock()


def unclaimed_sql(column: str) -> str:
    """An SQL condition: no live run holds the claim of the session whose id is in `column`."""
    return (
        "NOT EXISTS (SELECT 1 FROM pg_locks AS claim WHERE claim.locktype = 'advisory' "  # noqa: S608 - ours
        "AND claim.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        f"AND claim.classid = {CLAIM_NAMESPACE}::oid AND claim.objid = hashtext({column}::text)::oid "
        "AND claim.objsubid = 2)"
    )


def _acquire(key: str) -> Callable[[], None] | None:
    """Take the claim without waiting; its release, or None when a live run holds it."""
    if connection.vendor != "postgresql":
        with _local_guard:
            if key in _local_claims:
                return None
            _local_claims.add(key)

        def release_local() -> None:
            with _local_guard:
                _local_claims.discard(key)

        return release_local
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [CLAIM_NAMESPACE, key])
        if not cursor.fetchone()[0]:
            return None

    def release() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [CLAIM_NAMESPACE, key])
        except DatabaseError:
            connection.close()  # the connection is gone, and the lock with it

    return release


@contextmanager
def run_claim(session_id: uuid.UUID | str) -> Iterator[bool]:
    """Try to claim a session's fulfilment; yields whether this run holds it (never waits)."""
    key = str(session_id)
    release = _acquire(key)
    if release is None:
        yield False
        return
    token = _holding.set(key)
    try:
        yield True
    finally:
        _holding.reset(token)
        release()


def holding(session_id: uuid.UUID | str) -> bool:
    """Whether this run holds the claim of the session (and so any earlier claimer is gone)."""
    return _holding.get() == str(session_id)
