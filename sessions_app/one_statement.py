"""sessions_app's fast path on PostgreSQL: a session write and its audit link in one statement.

The locked ORM path (sessions_app.lifecycle, sessions_app.services) is the reference: it runs
everywhere and decides every case. On PostgreSQL two common cases are written here instead,
each in one self-committing statement, which measured 1.7 to 1.9 times the throughput of the
locked path (docs/decisions/webhook-write-path.md):

- transition_write: an event that moves its session (paid, pending, failed): move the
  session, store the event, append the audit link and NOTIFY, or nothing;
- session_insert: a new session and its audit link.

The contract: the caller decides and builds everything in memory first, exactly as the locked
path would (the moved session, the stored event, the audit link); a function here writes all
of it and returns what it wrote, or writes nothing and returns None, and the caller then takes
the locked path, which decides again against the committed state. Nothing here decides.

Statements run through Django's cursor wrapper (core.db.fetchone), so execute_wrapper and
CaptureQueriesContext see them. A statement that must undo itself calls payments_abort(),
which raises SQLSTATE PA001 (migration 0007); that code and nothing else marks our own abort.
core.db.ONE_STATEMENT switches this module off (ONE_STATEMENT_WRITES=0).
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import audit_appended, audit_link_statement
from core import db
from events_app.models import Event
from events_app.services import event_insert_statement
from sessions_app.events import Action
from sessions_app.models import PaymentSession, WebhookEvent
from sessions_app.signals import SESSION_PAID_CHANNEL

# The SQLSTATE of payments_abort() (sessions_app/migrations/0007_abort_sqlstate.py).
ABORT_SQLSTATE = "PA001"

# The events whose common case is written here: each moves an open session.
ACTIONS = frozenset({Action.PAID, Action.PENDING, Action.FAILED})


def enabled() -> bool:
    """Whether this fast path runs (PostgreSQL, unless core.db.ONE_STATEMENT is off)."""
    return db.one_statement()


@dataclass(frozen=True)
class Written:
    """What transition_write wrote: the stored event and the audit link, both saved now."""

    stored: WebhookEvent
    link: AuditEvent


def transition_write(session: PaymentSession, *, read_status: str, fields: tuple[str, ...],
                     stored: WebhookEvent, link: AuditEvent, merchant_event: Event,
                     notify: str | None) -> Written | None:
    """Write a transition already made in memory, in one statement, or nothing.

    `session` was read (without a lock) in `read_status` and moved in memory; `fields` are the
    fields the move changed. The statement updates the session only if it is still in
    `read_status`, stores `stored` only if the session moved, links `link` and records
    `merchant_event` only if the event was stored, and sends `notify` on the paid channel (when given) only if the link was written. If
    the session moved but the event id was taken, it aborts itself. Outside a transaction it
    commits by itself: no BEGIN, no COMMIT, and no lock held while Python works.

    Returns None, having written nothing, when the session changed since it was read or the
    event id is not new.
    """
    event_fields = db.insert_fields(WebhookEvent)
    statement = audit_link_statement(link, only_if="stored")
    recorded = event_insert_statement(merchant_event, only_if="stored")
    params = [
        *(f.get_db_prep_save(getattr(session, f.attname), connection) for f in _session_fields(fields)),
        session.pk, read_status,
        *db.insert_params(stored, event_fields),
        *statement.params,
        *recorded.params,
        "event stored concurrently",
        SESSION_PAID_CHANNEL, notify or "", notify is not None,
    ]
    try:
        # Inside a caller's transaction, a savepoint keeps the abort from spoiling it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            _, moved_count, stored_id, _, *link_row = db.fetchone(
                _transition_sql(fields, statement.ctes, statement.returns, recorded.cte), params)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != ABORT_SQLSTATE:
            raise
        return None  # moved, but the event id is not new: the statement undid the move
    if not moved_count:
        return None  # changed since it was read: nothing was written
    db.mark_inserted(stored, stored_id)
    db.mark_inserted(merchant_event)
    audit_appended(link, tuple(link_row))
    return Written(stored, link)


def session_insert(session: PaymentSession, link: AuditEvent, merchant_event: Event) -> None:
    """Insert a new session, its audit link and its merchant event in one statement, which commits by itself."""
    fields = db.insert_fields(PaymentSession)
    statement = audit_link_statement(link, only_if="inserted")
    recorded = event_insert_statement(merchant_event, only_if="inserted")
    row = db.fetchone(_insert_sql(statement.ctes, statement.returns, recorded.cte),
                      [*db.insert_params(session, fields), *statement.params, *recorded.params])
    audit_appended(link, row)
    db.mark_inserted(session)
    db.mark_inserted(merchant_event)


@functools.cache
def _session_fields(names: tuple[str, ...]) -> tuple:
    return tuple(PaymentSession._meta.get_field(name) for name in names)


@functools.cache
def _transition_sql(fields: tuple[str, ...], audit_ctes: str, link: str, event_cte: str) -> str:
    """The statement of transition_write, built once (only the parameters change)."""
    quote = connection.ops.quote_name
    event_fields = db.insert_fields(WebhookEvent)
    return (
        f"WITH moved AS (UPDATE {quote(PaymentSession._meta.db_table)} "  # noqa: S608 - names are ours
        f"SET {', '.join(f'{quote(f.column)} = %s' for f in _session_fields(fields))} "
        f"WHERE {quote('id')} = %s AND {quote('status')} = %s RETURNING {quote('id')}), "
        f"stored AS (INSERT INTO {quote(WebhookEvent._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in event_fields)}) SELECT {', '.join(['%s'] * len(event_fields))} "
        f"FROM moved ON CONFLICT ({quote('provider')}, {quote('event_id')}) DO NOTHING RETURNING {quote('id')}), "
        f"{audit_ctes}, {event_cte} "
        f"SELECT CASE WHEN (SELECT count(*) FROM moved) > (SELECT count(*) FROM stored) "
        f"THEN payments_abort(%s) END, (SELECT count(*) FROM moved), (SELECT {quote('id')} FROM stored), "
        f"(SELECT pg_notify(%s, %s) FROM {link} WHERE %s), {link}.* "
        f"FROM (SELECT 1) AS one LEFT JOIN {link} ON true"
    )


@functools.cache
def _insert_sql(audit_ctes: str, link: str, event_cte: str) -> str:
    """The statement of session_insert, built once (only the parameters change)."""
    quote = connection.ops.quote_name
    fields = db.insert_fields(PaymentSession)
    return (f"WITH inserted AS (INSERT INTO {quote(PaymentSession._meta.db_table)} "  # noqa: S608 - names are ours
            f"({', '.join(quote(f.column) for f in fields)}) VALUES ({', '.join(['%s'] * len(fields))}) "
            f"RETURNING 1), {audit_ctes}, {event_cte} SELECT * FROM {link}")
