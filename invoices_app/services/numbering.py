"""The invoice of a paid session: gapless numbers per merchant and year, VAT, refunds."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core import currencies
from events_app.services import event_emit
from invoices_app.models import Invoice, InvoiceCounter
from invoices_app.services.steps import ACTOR, step_once
from keys_app.entitlements import entitlement_keys_mark_refunded
from keys_app.models import Account
from sessions_app.models import PaymentSession


def vat_split(*, gross: Decimal, rate: Decimal, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(net, vat, gross) from a gross amount; net is rounded half up, VAT is the remainder."""
    quantum = Decimal(1).scaleb(-currencies.exponent(currency))
    gross = gross.quantize(quantum, rounding=ROUND_HALF_UP)
    net = (gross * 100 / (100 + rate)).quantize(quantum, rounding=ROUND_HALF_UP)
    return net, gross - net, gross


def invoice_issue(*, session: PaymentSession) -> Invoice:
    return step_once(session_id=session.pk, mark="invoice_issued_at",
                     find=lambda: Invoice.objects.filter(session=session).first(),
                     make=lambda: _invoice_create(session))


def _invoice_create(session: PaymentSession) -> Invoice:
    # Same reason as in session_lock: the invoice and the counter reference the account row.
    account = Account.objects.select_for_update(no_key=True).get(pk=session.account_id)
    now = timezone.now()
    counter, _ = InvoiceCounter.objects.get_or_create(account=account, year=now.year)
    # The counter row lock makes numbers gapless: the next number is taken in the same
    # transaction that stores the invoice, so a rollback gives it back.
    counter = InvoiceCounter.objects.select_for_update().get(pk=counter.pk)
    sequence = counter.last_number + 1
    InvoiceCounter.objects.filter(pk=counter.pk).update(last_number=sequence)
    net, vat, gross = vat_split(gross=session.amount, rate=account.vat_rate, currency=session.currency)
    invoice = Invoice.objects.create(
        account=account, session=session, number=f"{account.invoice_prefix}-{now.year}-{sequence:05d}",
        year=now.year, sequence=sequence, issue_date=now.date(), issued_at=now,
        seller_name=account.name, seller_address=account.address, seller_vat_id=account.vat_id,
        seller_email=account.email, buyer_email=session.customer_email, buyer_name=session.customer_name,
        buyer_address=session.customer_address, description=session.description or "Payment",
        currency=session.currency, vat_rate=account.vat_rate, net=net, vat=vat, gross=gross,
        payment_provider=session.provider, payment_reference=session.provider_reference,
        paid_at=session.paid_at,
    )
    audit_record(action="invoice.issued", subject_type="invoice", subject_id=invoice.pk,
                 account_id=account.pk, actor=ACTOR,
                 after={"number": invoice.number, "session_id": str(session.pk), "net": net, "vat": vat,
                        "gross": gross, "currency": invoice.currency, "vat_rate": invoice.vat_rate})
    event_emit(account_id=account.pk, mode=session.mode, type="invoice.issued", object_id=str(invoice.pk),
               data={"object": "invoice", "id": str(invoice.pk), "number": invoice.number,
                     "session_id": str(session.pk), "issued_at": invoice.issued_at, "currency": invoice.currency,
                     "net": net, "vat": vat, "gross": gross, "vat_rate": invoice.vat_rate,
                     "buyer_email": invoice.buyer_email or None})
    return invoice


@transaction.atomic
def invoice_mark_refunded(*, session_id: uuid.UUID | str, event_id: str = "") -> Invoice | None:
    # NO KEY UPDATE: an access link being created for this invoice must not wait on us.
    invoice = Invoice.objects.select_for_update(no_key=True).filter(session_id=session_id).first()
    if invoice is None or invoice.status == Invoice.Status.REFUNDED:
        return invoice
    invoice.status = Invoice.Status.REFUNDED
    invoice.refunded_at = timezone.now()
    invoice.save(update_fields=["status", "refunded_at"])
    audit_record(action="invoice.refunded", subject_type="invoice", subject_id=invoice.pk,
                 account_id=invoice.account_id, actor="webhook", before={"status": Invoice.Status.ISSUED},
                 after={"status": invoice.status}, data={"event_id": event_id})
    # What the refunded money bought stops verifying as valid.
    entitlement_keys_mark_refunded(session_id=session_id, actor="webhook")
    return invoice
