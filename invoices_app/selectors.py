"""Reads: what an invoice shows, what the access page shows, what needs fulfilling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q, QuerySet

from invoices_app.models import AccessLink, Invoice, KeyReveal
from keys_app.models import EntitlementKey
from keys_app.selectors import entitlement_key_current_for_session
from sessions_app import currencies
from sessions_app.models import PaymentSession, Status


def money(amount: Decimal, currency: str) -> str:
    exp = currencies.exponent(currency)
    return f"{amount:,.{exp}f} {currency}"


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    quantity: int
    unit_net: str
    net: str


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything the invoice PDF shows, and nothing else: rendering it twice gives the same bytes."""

    number: str
    issue_date: date
    issued_at: datetime
    seller_name: str
    seller_address: str
    seller_vat_id: str
    seller_email: str
    buyer_email: str
    buyer_name: str
    buyer_address: str
    lines: tuple[InvoiceLine, ...]
    currency: str
    vat_rate: str
    net: str
    vat: str
    gross: str
    payment_provider: str
    payment_reference: str
    paid_at: datetime | None
    session_id: str


def invoice_document(*, invoice: Invoice) -> InvoiceDocument:
    cur = invoice.currency
    net = money(invoice.net, cur)
    return InvoiceDocument(
        number=invoice.number, issue_date=invoice.issue_date, issued_at=invoice.issued_at,
        seller_name=invoice.seller_name, seller_address=invoice.seller_address, seller_vat_id=invoice.seller_vat_id,
        seller_email=invoice.seller_email, buyer_email=invoice.buyer_email, buyer_name=invoice.buyer_name,
        buyer_address=invoice.buyer_address,
        lines=(InvoiceLine(description=invoice.description, quantity=1, unit_net=net, net=net),),
        currency=cur, vat_rate=f"{invoice.vat_rate.normalize():f}",
        net=net, vat=money(invoice.vat, cur), gross=money(invoice.gross, cur),
        payment_provider=invoice.payment_provider, payment_reference=invoice.payment_reference,
        paid_at=invoice.paid_at, session_id=str(invoice.session_id),
    )


def invoice_for_session(*, session_id) -> Invoice | None:
    return Invoice.objects.select_related("account").filter(session_id=session_id).first()


def access_link_get(*, jti) -> AccessLink | None:
    return (AccessLink.objects.select_related("session", "session__account", "invoice")
            .filter(jti=jti).first())


@dataclass(frozen=True)
class AccessView:
    link: AccessLink
    session: PaymentSession
    invoice: Invoice
    key: EntitlementKey | None
    reveal: KeyReveal | None
    amount: str
    pdf_ready: bool


def access_view(*, link: AccessLink) -> AccessView:
    session = link.session
    key = entitlement_key_current_for_session(session_id=session.pk)
    reveal = KeyReveal.objects.filter(session_id=session.pk).first()
    return AccessView(link=link, session=session, invoice=link.invoice, key=key, reveal=reveal,
                      amount=money(link.invoice.gross, link.invoice.currency), pdf_ready=bool(link.invoice.pdf_name))


def sessions_needing_fulfilment(*, paid_before: datetime, queued_before: datetime, limit: int) -> QuerySet:
    """Paid sessions whose fulfilment is not finished and was not (re)queued recently."""
    return (PaymentSession.objects.filter(status=Status.PAID, paid_at__lte=paid_before)
            .filter(Q(fulfilment__isnull=True)
                    | Q(fulfilment__completed_at__isnull=True)
                    & (Q(fulfilment__queued_at__isnull=True) | Q(fulfilment__queued_at__lte=queued_before)))
            .order_by("paid_at").values_list("pk", flat=True)[:limit])


INVOICE_EXPORT_COLUMNS = ("number", "issue_date", "status", "currency", "net", "vat_rate", "vat", "gross",
                          "buyer_email", "buyer_name", "buyer_address", "description", "seller_name",
                          "seller_vat_id", "payment_provider", "payment_reference", "paid_at", "refunded_at",
                          "session_id", "merchant_id")


def invoices_for_export(*, account_id: int | None):
    """Rows for the accounting export in number order, read in chunks."""
    qs = Invoice.objects.all() if account_id is None else Invoice.objects.filter(account_id=account_id)
    return (qs.order_by("account_id", "year", "sequence")
            .values_list("number", "issue_date", "status", "currency", "net", "vat_rate", "vat", "gross",
                         "buyer_email", "buyer_name", "buyer_address", "description", "seller_name",
                         "seller_vat_id", "payment_provider", "payment_reference", "paid_at", "refunded_at",
                         "session_id", "account_id")
            .iterator(chunk_size=2000))
