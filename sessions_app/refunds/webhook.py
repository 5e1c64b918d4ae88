"""A provider's report of a refund (Stripe's charge.refunded / refund.*, One.com's refund.*),
applied under the session's row lock by sessions_app.lifecycle, after the event is stored once.

A refund we started is found by our id (in the provider's metadata) or by the provider's id; a
refund made at the provider (Stripe's dashboard) is recorded here as a new Refund.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from audit.services import audit_record
from core import currencies, errors
from sessions_app.models import PaymentSession
from sessions_app.refunds.models import RESERVING_STATUSES, Refund, RefundReason, RefundStatus
from sessions_app.refunds.state import refund_fail, refund_record, refund_succeed
from sessions_app.selectors import parse_uuid

logger = logging.getLogger(__name__)

# What a provider's refund status means for ours.
SUCCEEDED = "succeeded"
FAILED = ("failed", "canceled")


def refund_reports_apply(*, session: PaymentSession, provider: str, reports: list[dict[str, Any]], actor: str,
                         event_id: str) -> list[Refund]:
    """Each report: {"id", "amount_minor", "status", "reason"?, "failure_reason"?, "refund_id"?}."""
    applied = []
    for report in reports:
        refund = _apply_one(session=session, provider=provider, report=report, actor=actor, event_id=event_id)
        if refund is not None:
            applied.append(refund)
    return applied


def _find(session: PaymentSession, provider: str, report: dict[str, Any]) -> Refund | None:
    ours = parse_uuid(report.get("refund_id"))
    if ours is not None:
        refund = Refund.objects.select_for_update().filter(pk=ours, session=session).first()
        if refund is not None:
            return refund
    reference = str(report.get("id") or "")
    if not reference:
        return None
    refund = Refund.objects.select_for_update().filter(provider=provider, provider_reference=reference,
                                                       session=session).first()
    if refund is None and report.get("charge") and isinstance(report.get("amount_minor"), int):
        # Recorded from a charge's total before its own event arrived: the same money, now named.
        amount = currencies.from_minor(report["amount_minor"], session.currency)
        refund = (Refund.objects.select_for_update()
                  .filter(provider=provider, session=session, origin=Refund.Origin.PROVIDER, amount=amount,
                          provider_reference__startswith=f"{report['charge']}@").first())
        if refund is not None:
            Refund.objects.filter(pk=refund.pk).update(provider_reference=reference)
            refund.provider_reference = reference
    return refund


def _from_charge_total(session: PaymentSession, provider: str, report: dict[str, Any]) -> dict[str, Any] | None:
    """A charge's refunded total without its refunds: what we do not know of yet, as one refund."""
    total = report.get("charge_total_minor")
    if not isinstance(total, int) or isinstance(total, bool):
        return None
    known = (Refund.objects.filter(session=session, provider=provider, status__in=RESERVING_STATUSES)
             .aggregate(total=Sum("amount"))["total"] or Decimal(0))
    missing = total - currencies.to_minor(known, session.currency)
    if missing <= 0:
        return None
    return {"id": f"{report.get('charge')}@{total}", "amount_minor": missing, "status": "succeeded", "reason": ""}


def _apply_one(*, session: PaymentSession, provider: str, report: dict[str, Any], actor: str,
               event_id: str) -> Refund | None:
    if "charge_total_minor" in report:
        report = _from_charge_total(session, provider, report)
        if report is None:
            return None
    status = str(report.get("status") or "")
    reference = str(report.get("id") or "")[:200]
    refund = _find(session, provider, report)
    if refund is None:
        if status != SUCCEEDED and status not in ("pending", "requires_action"):
            return None
        minor = report.get("amount_minor")
        if not isinstance(minor, int) or isinstance(minor, bool) or minor <= 0:
            return None
        reason = report.get("reason") if report.get("reason") in RefundReason.values else RefundReason.OTHER
        try:
            # Made at the provider: the money moved (or will), so it is recorded like our own.
            refund = refund_record(session=session, amount=currencies.from_minor(minor, session.currency),
                                   reason=reason, actor=actor, origin=Refund.Origin.PROVIDER, provider=provider,
                                   provider_reference=reference)
        except errors.Conflict as exc:
            # More than we know to be left: kept in the audit trail for staff, never silently dropped.
            audit_record(action="refund.unrecorded", subject_type="payment_session", subject_id=session.pk,
                         account_id=session.account_id, actor=actor,
                         data={"event_id": event_id, "report": report, "code": exc.code})
            logger.warning("refund report beyond what was paid", extra={"event_id": event_id, "code": exc.code})
            return None
    elif reference and not refund.provider_reference and refund.status == RefundStatus.PENDING:
        refund.provider_reference = reference
        Refund.objects.filter(pk=refund.pk).update(provider_reference=reference)
    if status == SUCCEEDED:
        return refund_succeed(session=session, refund=refund, actor=actor, provider_reference=reference)
    if status in FAILED:
        return refund_fail(session=session, refund=refund, actor=actor,
                           reason=str(report.get("failure_reason") or status))
    return refund
