"""What the state machine records without moving: a declined attempt (the session stays open) and a
payment for a session that had already failed (it stays failed; the money is kept)."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core import currencies
from core.formatting import iso_utc
from sessions_app.events import PaymentEvent
from sessions_app.merchant_events import session_emit
from sessions_app.models import LatePayment, PaymentSession
from sessions_app.signals import session_late_payment

logger = logging.getLogger(__name__)


def attempt_failed_record(session: PaymentSession, event: PaymentEvent, *, actor: str) -> None:
    """A declined card: counted and shown on the checkout page; the session stays open."""
    before = {"payment_attempts_failed": session.payment_attempts_failed,
              "last_payment_error_code": session.last_payment_error_code}
    session.payment_attempts_failed += 1
    session.last_payment_error_code = (event.failure_reason or "payment_failed")[:100]
    session.last_payment_error_message = event.failure_message[:500]
    session.last_payment_error_at = timezone.now()
    update = ["payment_attempts_failed", "last_payment_error_code", "last_payment_error_message",
              "last_payment_error_at"]
    if event.provider_reference and not session.provider_reference:
        session.provider, session.provider_reference = event.provider, event.provider_reference
        update += ["provider", "provider_reference"]
    # A plain UPDATE: no transition, so django-fsm's "WHERE status = …" does not apply.
    PaymentSession.objects.filter(pk=session.pk).update(**{name: getattr(session, name) for name in update})
    audit_record(action="session.payment_attempt_failed", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=actor, before=before,
                 after={"payment_attempts_failed": session.payment_attempts_failed,
                        "last_payment_error_code": session.last_payment_error_code},
                 data={"event_id": event.event_id, "type": event.event_type, "provider": event.provider,
                       "message": session.last_payment_error_message})
    session_emit(session, "session.payment_attempt_failed", payment_attempts_failed=session.payment_attempts_failed,
                 last_payment_error={"code": session.last_payment_error_code,
                                     "message": session.last_payment_error_message or None})


def late_payment_record(session: PaymentSession, event: PaymentEvent, *, actor: str) -> LatePayment | None:
    """Money for a session that had already failed. The session stays failed (it never goes
    back); the payment is kept, audited, and the merchant is told at once (on commit)."""
    amount = (currencies.from_minor(event.amount_minor, event.currency.upper())
              if event.amount_minor is not None and event.currency and currencies.is_supported(event.currency.upper())
              else None)
    late, created = LatePayment.objects.get_or_create(
        session=session, provider=event.provider, provider_reference=event.provider_reference[:200],
        defaults={"account_id": session.account_id, "event_id": event.event_id[:255], "amount": amount,
                  "currency": (event.currency or "").upper()[:3]})
    if not created:
        return None  # another event of the same payment (a checkout.session.completed after its intent)
    if session.late_payment_at is None:
        session.late_payment_at = late.received_at
        PaymentSession.objects.filter(pk=session.pk).update(late_payment_at=late.received_at)
    audit_record(action="session.late_payment", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=actor,
                 after={"status": session.status, "failure_reason": session.failure_reason},
                 data={"event_id": event.event_id, "type": event.event_type, "provider": event.provider,
                       "provider_reference": late.provider_reference, "amount": late.amount,
                       "currency": late.currency, "late_payment_id": late.pk})
    session_emit(session, "session.late_payment",
                 late_payment={"id": late.pk, "provider": late.provider, "provider_reference": late.provider_reference,
                               "amount": None if late.amount is None else str(late.amount),
                               "currency": late.currency or None, "received_at": iso_utc(late.received_at)})
    logger.warning("late payment for a failed session", extra={"session_id": str(session.pk),
                                                               "event_id": event.event_id})
    # invoices_app listens and emails the merchant; the lifecycle never imports it.
    transaction.on_commit(partial(session_late_payment.send, sender=PaymentSession, session_id=session.pk,
                                  late_payment_id=late.pk))
    return late
