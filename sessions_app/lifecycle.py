"""The state machine's writer: verified provider events applied to sessions, each stored once.

A delivery is stored once per (provider, event id), decided against its session's state
(`_decide`), and written under the session's row lock, or, for the common case on PostgreSQL,
in one self-committing statement (sessions_app.one_statement, which only writes what was decided
here). Declined attempts and late payments are recorded here too.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_append, audit_event, audit_record
from core import currencies, db
from core.logs import request_id_var
from sessions_app import one_statement
from sessions_app.attempts import attempt_failed_record, late_payment_record
from sessions_app.events import Action, Outcome, PaymentEvent, WebhookResult
from sessions_app.merchant_events import session_emit, session_event, transition_type
from sessions_app.models import OPEN_STATUSES, PaymentSession, Status, WebhookEvent
from sessions_app.refunds.state import refundable
from sessions_app.refunds.webhook import refund_reports_apply
from sessions_app.selectors import session_get
from sessions_app.signals import SESSION_PAID_CHANNEL, session_paid

logger = logging.getLogger(__name__)


def session_state(session: PaymentSession) -> dict[str, Any]:
    return {"status": session.status, "provider": session.provider, "provider_reference": session.provider_reference,
            "failure_reason": session.failure_reason}


class _Duplicate(Exception):
    pass


def _parse_session_ref(ref: str | None) -> uuid.UUID | None:
    if not ref:
        return None
    try:
        return uuid.UUID(str(ref))
    except (ValueError, AttributeError, TypeError):
        return None


def _decide(session: PaymentSession, event: PaymentEvent) -> tuple[str, str]:
    """Which outcome an event has on a session, before anything is written."""
    if event.action == Action.NONE:
        return WebhookEvent.Outcome.IGNORED, "event type not handled"
    if event.livemode is not None and event.livemode != (session.mode == "live"):
        return WebhookEvent.Outcome.REJECTED, "livemode_mismatch"
    if event.action == Action.REFUNDED:
        if not refundable(session):
            return WebhookEvent.Outcome.IGNORED, f"refund for a {session.status} session"
        return WebhookEvent.Outcome.PROCESSED, "refunded"
    if event.action == Action.PAID and session.status == Status.FAILED:
        # The money moved although the session had ended: never ignored (see attempts.late_payment_record).
        return WebhookEvent.Outcome.LATE, f"paid after the session failed ({session.failure_reason or 'failed'})"
    if session.status not in OPEN_STATUSES:
        return WebhookEvent.Outcome.IGNORED, f"session already {session.status}"
    if event.action == Action.PAID:
        if event.currency is not None and event.currency.upper() != session.currency:
            return WebhookEvent.Outcome.REJECTED, f"currency_mismatch: expected {session.currency}, got {event.currency.upper()}"
        expected = currencies.to_minor(session.amount, session.currency)
        if event.amount_minor is not None and event.amount_minor != expected:
            return WebhookEvent.Outcome.REJECTED, f"amount_mismatch: expected {expected}, got {event.amount_minor}"
        return WebhookEvent.Outcome.PROCESSED, "paid"
    if event.action == Action.PENDING:
        if session.status == Status.PENDING:
            return WebhookEvent.Outcome.IGNORED, "already pending"
        return WebhookEvent.Outcome.PROCESSED, "pending"
    if event.action == Action.FAILED:
        return WebhookEvent.Outcome.PROCESSED, "failed"
    if event.action == Action.ATTEMPT_FAILED:
        return WebhookEvent.Outcome.PROCESSED, "attempt failed"
    return WebhookEvent.Outcome.IGNORED, "no action"


def _stored_event(event: PaymentEvent, *, outcome: str, detail: str, session: PaymentSession | None) -> WebhookEvent:
    return WebhookEvent(
        provider=event.provider, event_id=event.event_id[:255], event_type=event.event_type[:100],
        payload=event.payload, outcome=outcome, error=detail[:500] if outcome != WebhookEvent.Outcome.PROCESSED else "",
        processed_at=timezone.now(), session=session, account_id=session.account_id if session else None,
    )


def _store(event: PaymentEvent, *, outcome: str, detail: str, session: PaymentSession | None) -> WebhookEvent:
    stored = _stored_event(event, outcome=outcome, detail=detail, session=session)
    if not _insert_once(stored):
        raise _Duplicate
    return stored


def _insert_once(obj: WebhookEvent) -> bool:
    """INSERT … ON CONFLICT (provider, event_id) DO NOTHING RETURNING id: True if the row is new.

    The unique constraint decides, as before, but without a savepoint around the insert: a
    duplicate costs no error and no rollback, and a new event one statement instead of three.
    """
    with connection.cursor() as cursor:
        cursor.execute(_insert_once_sql(), db.insert_params(obj, db.insert_fields(WebhookEvent)))
        row = cursor.fetchone()
    if row is None:
        return False
    db.mark_inserted(obj, row[0])
    return True


@functools.cache
def _insert_once_sql() -> str:
    """The statement of _insert_once, built once (only the parameters change)."""
    meta = WebhookEvent._meta
    fields = db.insert_fields(WebhookEvent)
    quote = connection.ops.quote_name
    return (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({quote('provider')}, {quote('event_id')}) DO NOTHING RETURNING {quote(meta.pk.column)}")


def payment_event_apply(event: PaymentEvent, *, actor: str | None = None) -> WebhookResult:
    """Store a verified provider event once and move its session: one statement (the common
    case, on PostgreSQL) or one transaction under the session's row lock; one commit either way.

    A replay of the same event id stores nothing and changes nothing.
    """
    actor = actor or f"webhook:{event.provider}"
    session_id = _parse_session_ref(event.session_ref)
    if session_id is None and event.action == Action.REFUNDED:
        session_id = _session_of_payment(event)
    if session_id and event.action in one_statement.ACTIONS and one_statement.enabled():
        result = _apply_in_one_statement(event, session_id=session_id, actor=actor)
        if result is not None:
            return result
    try:
        with transaction.atomic():
            # Lock the session first: concurrent deliveries for it queue here and each sees the
            # state the previous one committed.
            session = (PaymentSession.objects.select_for_update().filter(pk=session_id).first()
                       if session_id else None)
            if session is None:
                stored = _store(event, outcome=WebhookEvent.Outcome.UNMATCHED, detail="no matching session",
                                session=None)
                audit_record(action="webhook.unmatched", subject_type="webhook_event", subject_id=stored.pk,
                             actor=actor, data={"event_id": event.event_id, "type": event.event_type})
                return WebhookResult(stored.outcome, stored.error, stored)
            outcome, detail = _decide(session, event)
            stored = _store(event, outcome=outcome, detail=detail, session=session)
            _apply_decision(session, event, outcome=outcome, detail=detail, actor=actor)
            return WebhookResult(outcome, detail, stored)
    except _Duplicate:
        return _redelivered(event, actor=actor)
    except Exception as exc:
        _store_failed(event, session_id=session_id, exc=exc)
        raise


def _session_of_payment(event: PaymentEvent) -> uuid.UUID | None:
    """A refund made at the provider names the payment (a PaymentIntent), not our session."""
    if not event.provider_reference:
        return None
    return (PaymentSession.objects.filter(provider=event.provider, provider_reference=event.provider_reference)
            .values_list("pk", flat=True).first())


def _redelivered(event: PaymentEvent, *, actor: str) -> WebhookResult:
    """A delivery whose event id is stored already: nothing more, unless our handler broke on it
    the first time (stored as failed), in which case the provider's retry applies it now."""
    stored = (WebhookEvent.objects.filter(provider=event.provider, event_id=event.event_id[:255])
              .only("pk", "outcome").first())
    if stored is not None and stored.outcome == WebhookEvent.Outcome.FAILED:
        return webhook_event_reprocess(webhook_event_id=stored.pk, event=event, actor=actor)
    return WebhookResult(Outcome.DUPLICATE, "event already received")


def _store_failed(event: PaymentEvent, *, session_id: uuid.UUID | None, exc: Exception) -> None:
    """Our handler broke on a verified event (a bug, a lost connection): keep the event with its
    error, so that staff can reprocess it and the provider's retry applies it (_redelivered). The
    caller re-raises: the provider sees a 5xx and retries."""
    try:
        session = PaymentSession.objects.filter(pk=session_id).only("pk", "account_id").first() if session_id else None
        _insert_once(_stored_event(event, outcome=WebhookEvent.Outcome.FAILED,
                                   detail=f"{type(exc).__name__}: {exc}", session=session))
    except Exception:
        # The database itself is gone: the provider's retry finds nothing stored and starts over.
        logger.warning("could not keep the failed event %s", event.event_id, exc_info=True)


def _apply_decision(session: PaymentSession, event: PaymentEvent, *, outcome: str, detail: str, actor: str) -> None:
    """Write what `_decide` concluded, under the session's row lock."""
    if outcome == WebhookEvent.Outcome.PROCESSED:
        _transition(session, event, actor=actor)
        return
    if outcome == WebhookEvent.Outcome.LATE:
        late_payment_record(session, event, actor=actor)
        return
    audit_record(action=f"webhook.{outcome}", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=actor,
                 data={"event_id": event.event_id, "type": event.event_type, "detail": detail})
    if outcome == WebhookEvent.Outcome.REJECTED:
        logger.warning("webhook rejected", extra={"event_id": event.event_id, "detail": detail})


TRANSITION_FIELDS = ("status", "provider", "provider_reference", "paid_at", "failed_at", "failure_reason")


def _apply_in_one_statement(event: PaymentEvent, *, session_id: uuid.UUID, actor: str) -> WebhookResult | None:
    """The common case on PostgreSQL: an event that moves its session, written in one statement.

    The session is read without a lock, decided and moved in memory as the locked path would;
    one_statement.transition_write writes all of it, or nothing if the session changed since it
    was read or the event id is taken. Anything but a clean move returns None: the caller then
    takes the locked path, which decides it against the committed state.
    """
    session = session_get(session_id=session_id)
    if session is None:
        return None
    outcome, detail = _decide(session, event)
    if outcome != WebhookEvent.Outcome.PROCESSED:
        return None
    read_status, before = session.status, session_state(session)
    _move(session, event)
    written = one_statement.transition_write(
        session, read_status=read_status, fields=TRANSITION_FIELDS,
        stored=_stored_event(event, outcome=outcome, detail=detail, session=session),
        link=_transition_link(session, event, before=before, actor=actor),
        merchant_event=session_event(session, transition_type(session)),
        notify=_paid_payload(session) if session.status == Status.PAID else None)
    if written is None:
        return None
    announce_delivery(session, notified=True)
    return WebhookResult(outcome, detail, written.stored)


def _transition_link(session: PaymentSession, event: PaymentEvent, *, before: dict[str, Any], actor: str) -> AuditEvent:
    """The audit link of a transition already made in memory."""
    return audit_event(action=f"session.{session.status}", subject_type="payment_session", subject_id=session.pk,
                       account_id=session.account_id, actor=actor, before=before, after=session_state(session),
                       data={"event_id": event.event_id, "type": event.event_type, "provider": event.provider})


def _move(session: PaymentSession, event: PaymentEvent) -> None:
    """The event's transition, in memory (the FSM refuses one its state does not allow)."""
    if event.action == Action.PAID:
        session.mark_paid(provider=event.provider, provider_reference=event.provider_reference)
    elif event.action == Action.PENDING:
        session.mark_pending(provider=event.provider, provider_reference=event.provider_reference)
    elif event.action == Action.FAILED:
        session.mark_failed(reason=event.failure_reason or "payment_failed", provider=event.provider,
                            provider_reference=event.provider_reference)


def _paid_payload(session: PaymentSession) -> str:
    return json.dumps({"session_id": str(session.pk), "request_id": request_id_var.get()}, separators=(",", ":"))


def announce_delivery(session: PaymentSession, *, notified: bool = False) -> None:
    """A session to deliver (paid, or fulfilled anyway) announces itself: to other processes on
    PostgreSQL, in its own transaction (NOTIFY; `notified` when the caller's statement did it),
    and to this one on commit (a signal). How it reaches fulfilment is invoices_app's business."""
    if not session.is_deliverable:
        return
    if not notified and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [SESSION_PAID_CHANNEL, _paid_payload(session)])
    # invoices_app listens; the lifecycle never imports it.
    transaction.on_commit(partial(session_paid.send, sender=PaymentSession, session_id=session.pk))


def _transition(session: PaymentSession, event: PaymentEvent, *, actor: str) -> None:
    before = session_state(session)
    if event.action == Action.REFUNDED:
        # Each refund the event reports moves on its own (sessions_app.refunds); the session stays paid.
        refund_reports_apply(session=session, provider=event.provider, reports=event.extra.get("refunds") or [],
                             actor=actor, event_id=event.event_id)
        return
    if event.action == Action.ATTEMPT_FAILED:
        attempt_failed_record(session, event, actor=actor)
        return
    _move(session, event)
    # The transition's fields only; ConcurrentTransitionMixin still adds "WHERE status = <old>".
    session.save(update_fields=list(TRANSITION_FIELDS))
    audit_append(_transition_link(session, event, before=before, actor=actor))
    session_emit(session, transition_type(session))
    announce_delivery(session)


# ---------------------------------------------------------------- reprocessing a stored delivery

# Outcomes worth a second look: the session did not exist yet, or processing broke off.
# Processed, ignored and rejected events were decided against their session and stay decided.
REPROCESSABLE_OUTCOMES = (WebhookEvent.Outcome.UNMATCHED, WebhookEvent.Outcome.FAILED, WebhookEvent.Outcome.RECEIVED)


def webhook_event_reprocess(*, webhook_event_id: int, event: PaymentEvent, actor: str) -> WebhookResult:
    """Re-evaluate a stored delivery against its session, as if it arrived now.

    `event` is the stored payload parsed again by its provider. The stored row is updated in
    place (its event id stays unique), so a reprocess can never add a second delivery; the
    state machine refuses to pay a session twice; a reprocess of an event already processed
    changes nothing.
    """
    session_id = _parse_session_ref(event.session_ref)
    with transaction.atomic():
        # Same lock order as payment_event_apply (session, then event row), so the two never deadlock.
        session = (PaymentSession.objects.select_for_update().filter(pk=session_id).first()
                   if session_id else None)
        stored = WebhookEvent.objects.select_for_update().get(pk=webhook_event_id)
        if stored.outcome not in REPROCESSABLE_OUTCOMES:
            return WebhookResult("unchanged", f"already {stored.outcome}", stored)
        before = {"outcome": stored.outcome, "error": stored.error}
        if session is None:
            outcome, detail = WebhookEvent.Outcome.UNMATCHED, "no matching session"
        else:
            outcome, detail = _decide(session, event)
        stored.outcome = outcome
        stored.error = detail[:500] if outcome != WebhookEvent.Outcome.PROCESSED else ""
        stored.processed_at = timezone.now()
        stored.session = session
        stored.account_id = session.account_id if session else None
        stored.save(update_fields=["outcome", "error", "processed_at", "session", "account"])
        audit_record(action="webhook.reprocessed", subject_type="webhook_event", subject_id=stored.pk,
                     account_id=stored.account_id, actor=actor, before=before,
                     after={"outcome": outcome, "error": stored.error},
                     data={"event_id": event.event_id, "type": event.event_type})
        if outcome in (WebhookEvent.Outcome.PROCESSED, WebhookEvent.Outcome.LATE):
            _apply_decision(session, event, outcome=outcome, detail=detail, actor=actor)
        return WebhookResult(outcome, detail, stored)


# ---------------------------------------------------------------- the customer


@transaction.atomic
def session_set_customer(*, session_id: uuid.UUID, email: str, name: str = "") -> PaymentSession:
    """The checkout page asks for an email when the merchant did not send one.

    Only while the session can still be paid, and never over an address already set: the
    receipt, the access link and the key go to this address.
    """
    session = PaymentSession.objects.select_for_update().get(pk=session_id)
    if not session.is_open or session.is_past_expiry():
        return session
    changed = []
    if email and not session.customer_email:
        session.customer_email = email
        changed.append("customer_email")
    if name and not session.customer_name:
        session.customer_name = name
        changed.append("customer_name")
    if changed:
        session.save(update_fields=changed)
        audit_record(action="session.customer_set", subject_type="payment_session", subject_id=session.pk,
                     account_id=session.account_id, actor="checkout",
                     after={f: getattr(session, f) for f in changed})
    return session
