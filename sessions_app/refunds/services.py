"""Starting a refund (API, dashboard) and the merchant's cancel of one still pending."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import transaction

from core import currencies, errors
from keys_app.models import Account
from sessions_app.models import PaymentSession
from sessions_app.refunds import gateways
from sessions_app.refunds.models import Refund, RefundReason, RefundStatus
from sessions_app.refunds.state import (
    refund_cancel,
    refund_fail,
    refund_record,
    refund_succeed,
    session_lock,
)


def refund_amount_clean(amount: Decimal | None, *, session: PaymentSession) -> Decimal | None:
    if amount is None:
        return None
    exp = currencies.exponent(session.currency)
    if not amount.is_finite() or amount <= 0:
        raise errors.DomainError("amount_invalid", "amount must be a positive decimal string.", field="amount")
    if amount != amount.quantize(Decimal(1).scaleb(-exp)):
        raise errors.DomainError("amount_precision", f"{session.currency} amounts have at most {exp} decimal places.",
                                 field="amount")
    return amount


@transaction.atomic
def refund_create(*, account: Account, session_id: uuid.UUID, amount: Decimal | None, reason: str, actor: str,
                  origin: str = Refund.Origin.API, revoke_key: bool | None = None) -> Refund:
    """A refund of a paid session: a missing amount is what is left of the paid amount.

    The session's row lock is held from the check of what is left to the provider's answer, so
    concurrent refunds of one session are decided one after the other and never add up to more
    than was paid (409 refund_exceeds_available).
    """
    if reason not in RefundReason.values:
        raise errors.DomainError("reason_invalid", f"reason must be one of {', '.join(RefundReason.values)}.",
                                 field="reason")
    session = PaymentSession.objects.select_for_update().filter(pk=session_id, account=account).first()
    if session is None:
        raise errors.NotFound("session_not_found", "No such session.")
    amount = refund_amount_clean(amount, session=session)
    refund = refund_record(session=session, amount=amount, reason=reason, actor=actor, origin=origin,
                           provider=session.provider, revoke_key=revoke_key)
    started = gateways.refund_start(refund=refund, session=session)
    if started.reference and started.reference != refund.provider_reference:
        refund.provider_reference = started.reference
        Refund.objects.filter(pk=refund.pk).update(provider_reference=started.reference)
    if started.status == "succeeded":
        refund_succeed(session=session, refund=refund, actor=actor, provider_reference=started.reference)
    elif started.status == "failed":
        refund_fail(session=session, refund=refund, actor=actor, reason=started.failure_reason)
    return refund


@transaction.atomic
def refund_cancel_pending(*, account: Account, refund_id: uuid.UUID, actor: str) -> Refund:
    """A pending One.com or Web3 refund the merchant gives up on: its amount is free again."""
    refund = Refund.objects.filter(pk=refund_id, account=account).first()
    if refund is None:
        raise errors.NotFound("refund_not_found", "No such refund.")
    session = session_lock(refund.session_id)
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status == RefundStatus.PENDING and refund.provider == "stripe":
        raise errors.Conflict("refund_in_flight", "A card refund is decided by Stripe; it cannot be canceled here.")
    return refund_cancel(session=session, refund=refund, actor=actor)
