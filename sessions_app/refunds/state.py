"""A refund's transitions, written under its session's row lock, with everything they imply:
the session's refunded total, the buyer's key, the merchant's event, the audit trail, and (by
signal, in the same transaction) the credit note."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import audit_record
from core import currencies, errors
from core.formatting import iso_utc
from events_app.services import event_emit
from keys_app.entitlements import entitlement_keys_mark_refunded
from sessions_app.models import LatePayment, PaymentSession, Status
from sessions_app.refunds.models import RESERVING_STATUSES, Refund, RefundStatus, SessionRefundStatus
from sessions_app.signals import refund_claim_requested, refund_succeeded


def session_lock(session_id) -> PaymentSession:
    """The session row, locked: every refund of a session is decided one at a time."""
    return PaymentSession.objects.select_for_update().get(pk=session_id)


def refundable_amount(session: PaymentSession) -> Decimal:
    """What was paid less what is refunded or may still be: the most a new refund can take."""
    if not refundable(session):
        return Decimal(0)
    held = (Refund.objects.filter(session=session, status__in=RESERVING_STATUSES)
            .aggregate(total=Sum("amount"))["total"] or Decimal(0))
    return max(session.amount - held, Decimal(0))


def refundable(session: PaymentSession) -> bool:
    """Paid, or failed and paid late (the money moved all the same)."""
    if session.status == Status.PAID:
        return True
    return session.status == Status.FAILED and LatePayment.objects.filter(session=session).exists()


def refunded_with_key_revoked(session_id) -> bool:
    """Refunded in full by a refund that revokes the key: a key issued afterwards (fulfilment
    ran late) is marked refunded at once. The caller holds the session's lock."""
    session = PaymentSession.objects.select_related("account").filter(pk=session_id).first()
    if session is None or session.refund_status != SessionRefundStatus.REFUNDED:
        return False
    flags = Refund.objects.filter(session=session, status=RefundStatus.SUCCEEDED).values_list("revoke_key", flat=True)
    return any(revokes_key(flag, session) for flag in flags)


def revokes_key(flag: bool | None, session: PaymentSession) -> bool:
    """A refund's revoke_key, or the merchant's default when it names none."""
    return session.account.refund_revokes_key if flag is None else flag


def refund_data(refund: Refund) -> dict[str, Any]:
    """The refund as the API, the events and the audit trail show it."""
    return {
        "id": str(refund.pk), "object": "refund", "session_id": str(refund.session_id),
        "amount": str(currencies.in_minor_units(Decimal(refund.amount), refund.currency)),
        "currency": refund.currency, "reason": refund.reason, "status": refund.status, "mode": refund.mode,
        "provider": refund.provider, "provider_reference": refund.provider_reference,
        "failure_reason": refund.failure_reason, "origin": refund.origin, "actor": refund.actor,
        "revoke_key": refund.revoke_key, "created_at": iso_utc(refund.created_at),
        "succeeded_at": iso_utc(refund.succeeded_at), "failed_at": iso_utc(refund.failed_at),
        "canceled_at": iso_utc(refund.canceled_at),
    }


def refund_record(*, session: PaymentSession, amount: Decimal | None, reason: str, actor: str, origin: str,
                  provider: str, provider_reference: str = "", revoke_key: bool | None = None) -> Refund:
    """A new pending refund of a locked session: refused beyond what is left to refund.

    A missing amount is what is left to refund.
    """
    if not refundable(session):
        raise errors.Conflict("session_not_refundable", f"A {session.status} session has nothing to refund.")
    available = refundable_amount(session)
    if available <= 0 and session.amount_refunded >= session.amount:
        raise errors.Conflict("refund_already_processed", "This session is already refunded in full.")
    if amount is None:
        if available <= 0:
            raise errors.Conflict("refund_exceeds_available", "Nothing of this session is left to refund.")
        amount = available
    elif amount > available:
        raise errors.Conflict("refund_exceeds_available",
                              f"At most {available} {session.currency} of this session can still be refunded.")
    refund = Refund.objects.create(
        session=session, account_id=session.account_id, mode=session.mode, amount=amount, currency=session.currency,
        reason=reason, provider=provider, provider_reference=provider_reference[:200], origin=origin,
        actor=actor[:200], revoke_key=revoke_key)
    data = refund_data(refund)
    event_emit(account_id=session.account_id, mode=session.mode, type="refund.created", data=data,
               object_id=str(refund.pk))
    audit_record(action="refund.created", subject_type="refund", subject_id=refund.pk,
                 account_id=session.account_id, actor=actor, after=data, data={"session_id": str(session.pk)})
    if provider == "web3":
        transaction.on_commit(partial(refund_claim_requested.send, sender=Refund, refund_id=refund.pk))
    return refund


def refund_succeed(*, session: PaymentSession, refund: Refund, actor: str, provider_reference: str = "") -> Refund:
    """pending → succeeded, under the session's lock; a second report of the same success changes nothing."""
    if refund.status == RefundStatus.SUCCEEDED:
        return refund
    before = {"status": refund.status}
    refund.mark_succeeded(provider_reference=provider_reference)
    refund.save()
    full = _session_totals_update(session, actor=actor)
    revoke = revokes_key(refund.revoke_key, session)
    if full and revoke:
        # What the money bought stops verifying as valid; the access link stays (the credit note).
        entitlement_keys_mark_refunded(session_id=session.pk, actor=actor)
    data = refund_data(refund)
    event_emit(account_id=session.account_id, mode=session.mode, type="refund.succeeded", data=data,
               object_id=str(refund.pk))
    audit_record(action="refund.succeeded", subject_type="refund", subject_id=refund.pk,
                 account_id=session.account_id, actor=actor, before=before, after=data,
                 data={"session_id": str(session.pk), "full": full, "key_revoked": bool(full and revoke)})
    refund_succeeded.send(sender=Refund, refund=refund)
    return refund


def refund_fail(*, session: PaymentSession, refund: Refund, actor: str, reason: str) -> Refund:
    """pending → failed; the amount is free to refund again. A succeeded refund never fails."""
    if refund.status != RefundStatus.PENDING:
        return refund
    refund.mark_failed(reason=reason or "refund_failed")
    refund.save()
    data = refund_data(refund)
    event_emit(account_id=session.account_id, mode=session.mode, type="refund.failed", data=data,
               object_id=str(refund.pk))
    audit_record(action="refund.failed", subject_type="refund", subject_id=refund.pk,
                 account_id=session.account_id, actor=actor, before={"status": RefundStatus.PENDING}, after=data,
                 data={"session_id": str(session.pk)})
    return refund


def refund_cancel(*, session: PaymentSession, refund: Refund, actor: str) -> Refund:
    if refund.status != RefundStatus.PENDING:
        raise errors.Conflict("refund_not_pending", f"The refund is already {refund.status}.")
    refund.mark_canceled()
    refund.save()
    audit_record(action="refund.canceled", subject_type="refund", subject_id=refund.pk,
                 account_id=session.account_id, actor=actor, before={"status": RefundStatus.PENDING},
                 after=refund_data(refund), data={"session_id": str(session.pk)})
    return refund


def _session_totals_update(session: PaymentSession, *, actor: str) -> bool:
    """amount_refunded and refund_status from the succeeded refunds; True once refunded in full."""
    total = (Refund.objects.filter(session=session, status=RefundStatus.SUCCEEDED)
             .aggregate(total=Sum("amount"))["total"] or Decimal(0))
    full = total >= session.amount
    status = (SessionRefundStatus.REFUNDED if full else
              SessionRefundStatus.PARTIALLY_REFUNDED if total > 0 else SessionRefundStatus.NONE)
    before = {"amount_refunded": str(session.amount_refunded), "refund_status": session.refund_status}
    PaymentSession.objects.filter(pk=session.pk).update(amount_refunded=total, refund_status=status)
    session.amount_refunded, session.refund_status = total, status
    audit_record(action="session.refund_status", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=actor, before=before,
                 after={"amount_refunded": str(total), "refund_status": status, "at": iso_utc(timezone.now())})
    return full
