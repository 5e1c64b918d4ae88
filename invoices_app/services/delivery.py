"""The emails of fulfilment: the buyer's receipt, the merchant's notices, each sent once; and the
receipt sent again on staff's request."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection, make_msgid
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from audit.services import audit_record
from core.formatting import money
from core.logs import redact
from invoices_app import claims
from invoices_app.models import AccessLink, EmailRecord, Invoice
from invoices_app.services.access import access_url, mail_allowed
from invoices_app.services.documents import invoice_pdf_bytes, invoice_pdf_filename
from invoices_app.services.keys import key_mark_emailed, key_plaintext_for_receipt
from invoices_app.services.steps import ACTOR, session_lock, step_mark
from keys_app.selectors import entitlement_key_current_for_session
from sessions_app.models import LatePayment, PaymentSession

logger = logging.getLogger(__name__)


def mail_print_instead(message: EmailMultiAlternatives, *, session: PaymentSession, kind: str) -> None:
    """Test mode, a recipient the merchant did not list: the mail goes to the log, not to the inbox.

    As Stripe does with test-mode receipts. The checkout page and the dashboard show the access
    link the mail carried.
    """
    attachments = ", ".join(f"{name} ({len(content)} bytes)" for name, content, _ in message.attachments) or "none"
    logger.warning(
        "test mode: %s for %s not sent (not the merchant's address nor in its test_email_recipients); "
        "printed here instead.\nTo: %s\nSubject: %s\nAttachments: %s\n\n%s",
        kind, ", ".join(message.to), ", ".join(message.to), message.subject, attachments,
        redact(message.body), extra={"session_id": str(session.pk), "mode": session.mode})


class EmailInFlight(Exception):
    """Another attempt claimed this email moments ago; try again once its lease runs out."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"email claimed by another attempt, retry in {retry_in:.0f} s")
        self.retry_in = retry_in


class ResendRefused(Exception):
    pass


class ResendLogged(Exception):
    """Test mode: the resent receipt went to the log, its address being no test recipient of the account."""


def _email_once(*, session: PaymentSession, kind: str, to: str, step: str | None,
                build: Callable[[], EmailMultiAlternatives], reference: str = "") -> EmailRecord:
    """Claim, send outside any transaction, record.

    SMTP has no idempotency key, so a crash between the server's "250 OK" and our commit
    of `sent_at` sends the mail again on retry (at least once, in that window only). The
    lease keeps a second worker from sending while the first one is still talking to the
    server; the stable Message-ID lets mail clients fold such a repeat. A run that holds the
    session's fulfilment claim knows any earlier claimer is dead (claims.py) and takes over
    at once instead of waiting out the lease.
    """
    with transaction.atomic():
        session_lock(session.pk)
        record, _ = EmailRecord.objects.get_or_create(session=session, kind=kind, reference=reference,
                                                      defaults={"to": to})
        if record.sent_at:
            if step:
                step_mark(session.pk, step)  # a run that died between sending and marking
            return record
        now = timezone.now()
        lease = timedelta(seconds=settings.FULFILMENT_EMAIL_LEASE_SECONDS)
        if record.claimed_at and record.claimed_at + lease > now and not claims.holding(session.pk):
            raise EmailInFlight((record.claimed_at + lease - now).total_seconds())
        EmailRecord.objects.filter(pk=record.pk).update(claimed_at=now, attempts=F("attempts") + 1, to=to)
    message = build()
    if not mail_allowed(session, to):
        mail_print_instead(message, session=session, kind=kind)
        with transaction.atomic():
            EmailRecord.objects.filter(pk=record.pk).update(sent_at=timezone.now(), subject=message.subject[:300],
                                                            message_id="", last_error="")
            if step:
                step_mark(session.pk, step)
            audit_record(action=f"email.{kind}.logged", subject_type="payment_session", subject_id=session.pk,
                         account_id=session.account_id, actor=ACTOR,
                         data={"to": to, "subject": message.subject, "reason": "test_mode_recipient_not_listed"})
        record.refresh_from_db()
        return record
    # The connection is ours to close: the send is recorded before the goodbye to the server
    # (QUIT), and before the audit row waits for the merchant's chain, so that the window in
    # which a crash sends the mail twice is one UPDATE long.
    smtp = get_connection()
    try:
        smtp.open()
        smtp.send_messages([message])
    except Exception as exc:
        # Nothing was accepted: give the claim back so the retry need not wait for the lease.
        EmailRecord.objects.filter(pk=record.pk).update(claimed_at=None, last_error=f"{type(exc).__name__}: {exc}"[:500])
        with contextlib.suppress(Exception):
            smtp.close()
        raise
    EmailRecord.objects.filter(pk=record.pk).update(sent_at=timezone.now(), subject=message.subject[:300],
                                                    message_id=message.extra_headers.get("Message-ID", ""),
                                                    last_error="")
    with contextlib.suppress(Exception):
        smtp.close()  # the server has the message; a failed QUIT changes nothing
    with transaction.atomic():
        if step:
            step_mark(session.pk, step)
        audit_record(action=f"email.{kind}.sent", subject_type="payment_session", subject_id=session.pk,
                     account_id=session.account_id, actor=ACTOR, data={"to": to, "subject": message.subject})
    record.refresh_from_db()
    return record


def _one_line(text: str) -> str:
    # A merchant's name with a line break must not make the header invalid (or inject one).
    return " ".join(text.split())


def _mail_domain() -> str:
    return settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "localhost"


def _message_id(session: PaymentSession, kind: str) -> str:
    return f"<{kind}.{session.pk}@{_mail_domain()}>"


def _email_context(session: PaymentSession, invoice: Invoice) -> dict[str, Any]:
    return {"session": session, "invoice": invoice, "amount": money(invoice.gross, invoice.currency),
            "net": money(invoice.net, invoice.currency), "vat": money(invoice.vat, invoice.currency)}


def _receipt(*, session: PaymentSession, invoice: Invoice, link: AccessLink, to: str, message_id: str, pdf: bytes,
             plaintext_key: str | None = None) -> EmailMultiAlternatives:
    """The buyer's receipt: the access link, the invoice PDF attached, and the key in plain text
    only when one is given."""
    context = {**_email_context(session, invoice), "access_url": access_url(link),
               "key": entitlement_key_current_for_session(session_id=session.pk), "plaintext_key": plaintext_key,
               "expires_at": link.expires_at}
    message = EmailMultiAlternatives(
        subject=_one_line(("[TEST] " if invoice.mode == "test" else "")
                          + f"Your receipt {invoice.number} from {invoice.seller_name}"),
        body=render_to_string("emails/receipt.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=[to],
        # The invoice's seller is the merchant account that sold (a snapshot taken at issue), and
        # only merchants' keys create sessions: nothing a buyer can set reaches these headers.
        reply_to=[invoice.seller_email] if invoice.seller_email else None,
        headers={"Message-ID": message_id},
    )
    message.attach_alternative(render_to_string("emails/receipt.html", context), "text/html")
    message.attach(invoice_pdf_filename(invoice), pdf, "application/pdf")
    return message


def receipt_send(*, session: PaymentSession, invoice: Invoice, link: AccessLink) -> EmailRecord | None:
    if not session.customer_email:
        return None
    emailed_key = False

    def build() -> EmailMultiAlternatives:
        nonlocal emailed_key
        # A receipt that goes to the log never carries the plain key: logs are no place for it.
        plaintext = key_plaintext_for_receipt(session) if mail_allowed(session, session.customer_email) else None
        emailed_key = plaintext is not None
        pdf = invoice_pdf_bytes(invoice=invoice)
        if pdf is None:
            raise FileNotFoundError(f"PDF of {invoice.number} is missing")
        return _receipt(session=session, invoice=invoice, link=link, to=session.customer_email, pdf=pdf,
                        message_id=_message_id(session, EmailRecord.Kind.RECEIPT), plaintext_key=plaintext)

    record = _email_once(session=session, kind=EmailRecord.Kind.RECEIPT, to=session.customer_email,
                         step="email_sent_at", build=build)
    if emailed_key and record.sent_at:
        key_mark_emailed(session)
    return record


def receipt_resend(*, invoice: Invoice, actor: str) -> str:
    """Send the receipt again on request (a customer lost it). Unlike the first send this is
    deliberately not once-only; each resend is audited and gets its own Message-ID."""

    session = invoice.session
    if not invoice.buyer_email:
        raise ResendRefused("The invoice has no customer email.")
    link = AccessLink.objects.filter(session=session).first()
    if link is None:
        raise ResendRefused("The access link does not exist yet; fulfilment is still running.")
    if link.revoked_at:
        raise ResendRefused("The access link was revoked; a resend would carry a dead link.")
    if link.expires_at <= timezone.now():
        raise ResendRefused("The access link has expired.")
    pdf = invoice_pdf_bytes(invoice=invoice)
    if pdf is None:
        raise ResendRefused(f"The PDF of {invoice.number} is not ready yet.")
    # A resend never carries the plain key: it exists only until it was revealed or emailed once.
    message_id = make_msgid(idstring=f"receipt-resend.{session.pk}", domain=_mail_domain())
    message = _receipt(session=session, invoice=invoice, link=link, to=invoice.buyer_email, message_id=message_id,
                       pdf=pdf)
    if not mail_allowed(session, invoice.buyer_email):
        mail_print_instead(message, session=session, kind="receipt (resent)")
        audit_record(action="email.receipt.logged", subject_type="invoice", subject_id=invoice.pk,
                     account_id=invoice.account_id, actor=actor,
                     data={"to": invoice.buyer_email, "reason": "test_mode_recipient_not_listed"})
        raise ResendLogged(f"test mode: printed to the log, not mailed to {invoice.buyer_email} (neither the "
                           "account's email nor one of its test_email_recipients); the session's page shows the link.")
    message.send()
    audit_record(action="email.receipt.resent", subject_type="invoice", subject_id=invoice.pk,
                 account_id=invoice.account_id, actor=actor, data={"to": invoice.buyer_email,
                                                                    "message_id": message_id})
    return invoice.buyer_email


def merchant_notify(*, session: PaymentSession, invoice: Invoice) -> EmailRecord | None:
    merchant_email = session.account.email
    if not merchant_email:
        return None

    def build() -> EmailMultiAlternatives:
        context = _email_context(session, invoice)
        message = EmailMultiAlternatives(
            subject=_one_line(f"Payment received: {context['amount']} ({invoice.number})"),
            body=render_to_string("emails/merchant_paid.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[merchant_email],
            headers={"Message-ID": _message_id(session, EmailRecord.Kind.MERCHANT_PAID)},
        )
        message.attach_alternative(render_to_string("emails/merchant_paid.html", context), "text/html")
        return message

    return _email_once(session=session, kind=EmailRecord.Kind.MERCHANT_PAID, to=merchant_email,
                       step="merchant_notified_at", build=build)


def late_payment_notify(*, late_payment_id: int) -> EmailRecord | None:
    """Tell the merchant at once that money arrived for a session that had already failed."""
    late = LatePayment.objects.select_related("session", "session__account").filter(pk=late_payment_id).first()
    if late is None:
        return None
    session = late.session
    merchant_email = session.account.email
    if not merchant_email:
        return None
    amount = money(late.amount, late.currency) if late.amount is not None and late.currency else \
        money(session.amount, session.currency)

    def build() -> EmailMultiAlternatives:
        context = {"session": session, "late": late, "amount": amount,
                   "dashboard_url": f"{settings.PUBLIC_BASE_URL}/admin/sessions_app/paymentsession/{session.pk}/change/"}
        message = EmailMultiAlternatives(
            subject=_one_line(f"Paid after expiry: {amount} for session {session.pk}"),
            body=render_to_string("emails/merchant_late_payment.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[merchant_email],
            headers={"Message-ID": _message_id(session, f"{EmailRecord.Kind.MERCHANT_LATE_PAYMENT}.{late.pk}")},
        )
        return message

    return _email_once(session=session, kind=EmailRecord.Kind.MERCHANT_LATE_PAYMENT, to=merchant_email, step=None,
                       build=build, reference=str(late.pk))
