"""Invoices and credit notes: gapless numbers per merchant, series, mode and year, and VAT.

Test mode has series of its own (TEST-INV-2026-00001, TEST-CN-2026-00001): a test document never
takes a number from the live books.
"""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from audit.services import audit_record
from core import currencies
from events_app.services import event_emit
from invoices_app.models import CreditNote, Invoice, InvoiceCounter
from invoices_app.services.steps import ACTOR, step_once
from keys_app.models import Account, Mode
from sessions_app.models import PaymentSession, Refund

CREDIT_NOTE_PREFIX = "CN"
TEST_MARK = "TEST"


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
    sequence = _next_number(account=account, series=InvoiceCounter.Series.INVOICE, mode=session.mode, year=now.year)
    net, vat, gross = vat_split(gross=session.amount, rate=account.vat_rate, currency=session.currency)
    invoice = Invoice.objects.create(
        account=account, session=session,
        number=document_number(account.invoice_prefix, mode=session.mode, year=now.year, sequence=sequence),
        mode=session.mode, year=now.year, sequence=sequence, issue_date=now.date(), issued_at=now,
        seller_name=account.name, seller_address=account.address, seller_vat_id=account.vat_id,
        seller_email=account.email, buyer_email=session.customer_email, buyer_name=session.customer_name,
        buyer_address=session.customer_address, description=session.description or "Payment",
        currency=session.currency, vat_rate=account.vat_rate, net=net, vat=vat, gross=gross,
        payment_provider=session.provider, payment_reference=session.provider_reference,
        paid_at=session.paid_at,
    )
    audit_record(action="invoice.issued", subject_type="invoice", subject_id=invoice.pk,
                 account_id=account.pk, actor=ACTOR,
                 after={"number": invoice.number, "mode": invoice.mode, "session_id": str(session.pk), "net": net,
                        "vat": vat,
                        "gross": gross, "currency": invoice.currency, "vat_rate": invoice.vat_rate})
    event_emit(account_id=account.pk, mode=session.mode, type="invoice.issued", object_id=str(invoice.pk),
               data={"object": "invoice", "id": str(invoice.pk), "number": invoice.number,
                     "session_id": str(session.pk), "issued_at": invoice.issued_at, "currency": invoice.currency,
                     "net": net, "vat": vat, "gross": gross, "vat_rate": invoice.vat_rate,
                     "buyer_email": invoice.buyer_email or None})
    return invoice


def document_number(prefix: str, *, mode: str, year: int, sequence: int) -> str:
    number = f"{prefix}-{year}-{sequence:05d}"
    return number if mode == Mode.LIVE else f"{TEST_MARK}-{number}"


def _next_number(*, account: Account, series: str, mode: str, year: int) -> int:
    """The next number of a series, taken under the counter's row lock in the caller's transaction,
    which also stores the document: a rollback gives the number back, so the series has no gaps."""
    counter, _ = InvoiceCounter.objects.get_or_create(account=account, series=series, mode=mode, year=year)
    counter = InvoiceCounter.objects.select_for_update().get(pk=counter.pk)
    sequence = counter.last_number + 1
    InvoiceCounter.objects.filter(pk=counter.pk).update(last_number=sequence)
    return sequence


def credit_note_issue(*, refund: Refund) -> CreditNote:
    """The credit note of a succeeded refund, once, in the transaction that marks it succeeded."""
    existing = CreditNote.objects.filter(refund=refund).first()
    if existing is not None:
        return existing
    account = Account.objects.select_for_update(no_key=True).get(pk=refund.account_id)
    session = refund.session
    invoice = Invoice.objects.filter(session_id=refund.session_id).first()
    rate = invoice.vat_rate if invoice is not None else account.vat_rate
    now = timezone.now()
    sequence = _next_number(account=account, series=InvoiceCounter.Series.CREDIT_NOTE, mode=refund.mode,
                            year=now.year)
    net, vat, gross = vat_split(gross=refund.amount, rate=rate, currency=refund.currency)
    note = CreditNote.objects.create(
        account=account, refund=refund, session=session, invoice=invoice, mode=refund.mode,
        number=document_number(CREDIT_NOTE_PREFIX, mode=refund.mode, year=now.year, sequence=sequence),
        year=now.year, sequence=sequence, issue_date=now.date(), issued_at=now,
        invoice_number=invoice.number if invoice is not None else "",
        seller_name=invoice.seller_name if invoice is not None else account.name,
        seller_address=invoice.seller_address if invoice is not None else account.address,
        seller_vat_id=invoice.seller_vat_id if invoice is not None else account.vat_id,
        buyer_email=session.customer_email, buyer_name=session.customer_name, reason=refund.reason,
        currency=refund.currency, vat_rate=rate, net=net, vat=vat, gross=gross)
    audit_record(action="credit_note.issued", subject_type="credit_note", subject_id=note.pk,
                 account_id=account.pk, actor=ACTOR,
                 after={"number": note.number, "mode": note.mode, "refund_id": str(refund.pk),
                        "invoice_number": note.invoice_number, "gross": gross, "currency": note.currency})
    return note


def invoice_mark_refunded(*, session_id: uuid.UUID | str, refund_id: str = "") -> Invoice | None:
    """A session refunded in full: its invoice row says so. The invoice PDF is never changed;
    the credit notes are the documents of the refund."""
    # NO KEY UPDATE: an access link being created for this invoice must not wait on us.
    invoice = Invoice.objects.select_for_update(no_key=True).filter(session_id=session_id).first()
    if invoice is None or invoice.status == Invoice.Status.REFUNDED:
        return invoice
    invoice.status = Invoice.Status.REFUNDED
    invoice.refunded_at = timezone.now()
    invoice.save(update_fields=["status", "refunded_at"])
    audit_record(action="invoice.refunded", subject_type="invoice", subject_id=invoice.pk,
                 account_id=invoice.account_id, actor=ACTOR, before={"status": Invoice.Status.ISSUED},
                 after={"status": invoice.status}, data={"refund_id": refund_id})
    return invoice
