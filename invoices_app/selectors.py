"""Reads: what an invoice shows, what the access page shows, what needs fulfilling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Q, QuerySet

from core import db
from core.formatting import money
from invoices_app import claims
from invoices_app.models import AccessLink, CreditNote, Fulfilment, Invoice, KeyReveal
from keys_app.models import EntitlementKey
from keys_app.selectors import entitlement_key_current_for_session
from sessions_app.models import PaymentSession, Refund, Status
from sessions_app.selectors import parse_uuid


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
    # Test mode: the page, the PDF and the email carry a visible TEST mark.
    test: bool = False


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
        paid_at=invoice.paid_at, session_id=str(invoice.session_id), test=invoice.mode == "test",
    )




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
    credit_notes: tuple = ()


def access_view(*, link: AccessLink) -> AccessView:
    session = link.session
    key = entitlement_key_current_for_session(session_id=session.pk)
    reveal = KeyReveal.objects.filter(session_id=session.pk).first()
    return AccessView(link=link, session=session, invoice=link.invoice, key=key, reveal=reveal,
                      amount=money(link.invoice.gross, link.invoice.currency), pdf_ready=bool(link.invoice.pdf_name),
                      credit_notes=tuple(CreditNote.objects.filter(session_id=session.pk).order_by("issued_at", "pk")))


def sessions_needing_fulfilment(*, paid_before: datetime, queued_before: datetime, limit: int) -> QuerySet:
    """Paid (or fulfilled-anyway) sessions whose fulfilment is not finished and was not (re)queued recently."""
    deliverable = Q(status=Status.PAID) | Q(status=Status.FAILED, fulfil_anyway_at__isnull=False)
    return (PaymentSession.objects.filter(deliverable, paid_at__lte=paid_before)
            .filter(Q(fulfilment__isnull=True)
                    | Q(fulfilment__completed_at__isnull=True)
                    & (Q(fulfilment__queued_at__isnull=True) | Q(fulfilment__queued_at__lte=queued_before)))
            .order_by("paid_at").values_list("pk", flat=True)[:limit])


INVOICE_EXPORT_COLUMNS = ("number", "issue_date", "status", "currency", "net", "vat_rate", "vat", "gross",
                          "buyer_email", "buyer_name", "buyer_address", "description", "seller_name",
                          "seller_vat_id", "payment_provider", "payment_reference", "paid_at", "refunded_at",
                          "session_id", "merchant_id", "mode")


def invoices_for_export(*, account_id: int | None, mode: str | None = None, start: date | None = None,
                        end: date | None = None):
    """Rows for the accounting export in number order (issued on days start..end, inclusive), read
    through a server-side cursor in chunks."""
    qs = Invoice.objects.all() if account_id is None else Invoice.objects.filter(account_id=account_id)
    if mode:
        qs = qs.filter(mode=mode)
    if start:
        qs = qs.filter(issue_date__gte=start)
    if end:
        qs = qs.filter(issue_date__lte=end)
    return (qs.order_by("account_id", "year", "sequence")
            .values_list("number", "issue_date", "status", "currency", "net", "vat_rate", "vat", "gross",
                         "buyer_email", "buyer_name", "buyer_address", "description", "seller_name",
                         "seller_vat_id", "payment_provider", "payment_reference", "paid_at", "refunded_at",
                         "session_id", "account_id", "mode")
            .iterator(chunk_size=5000))


def invoice_search(queryset: QuerySet[Invoice], term: str) -> QuerySet[Invoice]:
    """Invoices whose number, payment reference or session id is `term`, or whose buyer email
    starts with it: each through an index."""
    term = term.strip()
    if not term:
        return queryset
    session_id = parse_uuid(term)
    if session_id is not None:
        return queryset.filter(session_id=session_id)
    return queryset.filter(Q(number=term) | Q(payment_reference=term) | Q(buyer_email__istartswith=term))


REFUND_EXPORT_COLUMNS = ("refund_id", "created_at", "succeeded_at", "status", "mode", "amount", "currency", "reason",
                         "origin", "provider", "provider_reference", "credit_note_number", "invoice_number",
                         "session_id", "merchant_id")


def refunds_for_export(*, account_id: int | None, mode: str | None = None):
    """Refunds with their credit note (empty until one succeeded), newest first, read in chunks."""
    qs = Refund.objects.all() if account_id is None else Refund.objects.filter(account_id=account_id)
    if mode:
        qs = qs.filter(mode=mode)
    return (qs.order_by("-created_at", "-id")
            .values_list("id", "created_at", "succeeded_at", "status", "mode", "amount", "currency", "reason",
                         "origin", "provider", "provider_reference", "credit_note__number",
                         "credit_note__invoice_number", "session_id", "account_id")
            .iterator(chunk_size=2000))


def relay_look_back_sql() -> str:
    """Sessions to deliver (paid, or fulfilled anyway) paid in the last `%s` seconds, after the cursor (`%s`, `%s`: paid_at and id),
    with no finished fulfilment and no live run on them (claims.py), `%s` at most, in payment order.

    What the relay hands on when it takes over: what was announced while no relay listened
    (a deploy, a restart, a crash).
    """
    sessions, fulfilments = db.tables(PaymentSession, Fulfilment)
    return (f"SELECT s.id, s.paid_at FROM {sessions} AS s LEFT JOIN {fulfilments} AS f ON f.session_id = s.id "  # noqa: S608
            # The same condition as the partial index session_deliverable_idx, so that it is used.
            "WHERE (s.status = 'paid' OR s.fulfil_anyway_at IS NOT NULL) "
            "AND s.paid_at >= now() - make_interval(secs => %s) "
            "AND (s.paid_at, s.id) > (%s, %s) "
            f"AND f.completed_at IS NULL AND {claims.unclaimed_sql('s.id')} ORDER BY s.paid_at, s.id LIMIT %s")


def relay_stalled_sql() -> str:
    """Runs that began `%s` seconds ago or more and stopped dead (no live claim, no error
    recorded), `%s` at most; each is marked handed on (queued_at), so that the next sweeps
    leave it to the workers for `%s` seconds before handing it on again."""
    (fulfilments,) = db.tables(Fulfilment)
    return (f"WITH stalled AS (SELECT f.session_id FROM {fulfilments} AS f WHERE f.completed_at IS NULL "  # noqa: S608
            "AND f.started_at < now() - make_interval(secs => %s) AND f.last_error = '' "
            f"AND {claims.unclaimed_sql('f.session_id')} "
            "AND (f.queued_at IS NULL OR f.queued_at < f.started_at OR f.queued_at < now() - make_interval(secs => %s)) "
            "ORDER BY f.started_at LIMIT %s FOR UPDATE OF f SKIP LOCKED) "
            f"UPDATE {fulfilments} AS f SET queued_at = now() FROM stalled WHERE f.session_id = stalled.session_id "
            "RETURNING f.session_id")
