"""Fulfilment of a paid session, step by step, each step exactly once.

Every step first looks for its own result and returns it when it exists; the write of a
step runs under a lock on the session's Fulfilment row, and a unique constraint backs
each result (one invoice, one key, one link, one email record per session), so a retry,
a redelivered task or two workers at once never double anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives, get_connection, make_msgid
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import get_valid_filename

from audit.services import audit_record
from core import currencies, errors
from invoices_app import claims, secrets_box, tokens
from invoices_app.models import (
    AccessLink,
    AccessLinkUse,
    EmailRecord,
    Fulfilment,
    Invoice,
    InvoiceCounter,
    KeyReveal,
)
from invoices_app.selectors import invoice_document, money
from keys_app.entitlements import entitlement_key_issue, entitlement_key_rotate, entitlement_keys_mark_refunded
from keys_app.models import Account, EntitlementKey
from keys_app.selectors import entitlement_key_current_for_session
from sessions_app.models import LatePayment, PaymentSession, Status

logger = logging.getLogger(__name__)

ACTOR = "worker:fulfilment"


class EmailInFlight(Exception):
    """Another attempt claimed this email moments ago; try again once its lease runs out."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"email claimed by another attempt, retry in {retry_in:.0f} s")
        self.retry_in = retry_in


# ---------------------------------------------------------------- the run


def fulfilment_run(*, session_id: uuid.UUID | str) -> Fulfilment | None:
    session = PaymentSession.objects.select_related("account").filter(pk=session_id).first()
    if session is None or not session.is_deliverable:
        logger.warning("fulfilment of session %s skipped: not found or not paid", session_id)
        return None
    fulfilment, _ = Fulfilment.objects.get_or_create(session=session)
    if fulfilment.completed_at:
        return fulfilment
    with claims.run_claim(session.pk) as claimed:
        if not claimed:
            # A live run has it; should that run die, the relay hands the session on (relay.py).
            logger.info("fulfilment of session %s is running elsewhere", session.pk)
            return None
        return _run_steps(session)


def _run_steps(session: PaymentSession) -> Fulfilment:
    Fulfilment.objects.filter(pk=session.pk).update(attempts=F("attempts") + 1, started_at=timezone.now(),
                                                    last_error="")
    try:
        invoice = invoice_issue(session=session)
        invoice_pdf_store(invoice=invoice)
        invoice.refresh_from_db()
        buyer_key_issue(session=session)
        link = access_link_create(session=session, invoice=invoice)
        receipt_send(session=session, invoice=invoice, link=link)
        merchant_notify(session=session, invoice=invoice)
    except Exception as exc:
        Fulfilment.objects.filter(pk=session.pk).update(last_error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    with transaction.atomic():
        done = Fulfilment.objects.filter(pk=session.pk, completed_at__isnull=True).update(
            completed_at=timezone.now(), last_error="")
        if done:
            audit_record(action="fulfilment.completed", subject_type="payment_session", subject_id=session.pk,
                         account_id=session.account_id, actor=ACTOR, data={"invoice": invoice.number})
    return Fulfilment.objects.get(pk=session.pk)


def _lock(session: PaymentSession) -> Fulfilment:
    """Serialise the steps of one session: a second worker waits here, then finds the result.

    Lock order matters. PostgreSQL checks foreign keys at COMMIT (Django makes them deferred),
    which takes a share lock on the session row after we already hold the merchant's audit
    chain; a webhook for the same session holds that row and waits for the chain. Taking the
    session row first (FOR NO KEY UPDATE, which does not block other rows referencing it)
    gives both paths the same order: session, then chain.
    """
    PaymentSession.objects.select_for_update(no_key=True).only("pk").get(pk=session.pk)
    fulfilment, _ = Fulfilment.objects.get_or_create(session=session)
    return Fulfilment.objects.select_for_update(no_key=True).get(pk=fulfilment.pk)


def _mark(session: PaymentSession, field: str) -> None:
    Fulfilment.objects.filter(pk=session.pk, **{f"{field}__isnull": True}).update(**{field: timezone.now()})


# ---------------------------------------------------------------- 1. invoice


def vat_split(*, gross: Decimal, rate: Decimal, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """(net, vat, gross) from a gross amount; net is rounded half up, VAT is the remainder."""
    quantum = Decimal(1).scaleb(-currencies.exponent(currency))
    gross = gross.quantize(quantum, rounding=ROUND_HALF_UP)
    net = (gross * 100 / (100 + rate)).quantize(quantum, rounding=ROUND_HALF_UP)
    return net, gross - net, gross


def invoice_issue(*, session: PaymentSession) -> Invoice:
    existing = Invoice.objects.filter(session=session).first()
    if existing:
        return existing
    with transaction.atomic():
        _lock(session)
        existing = Invoice.objects.filter(session=session).first()
        if existing:
            return existing
        # Same reason as in _lock: the invoice and the counter reference the account row.
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
        _mark(session, "invoice_issued_at")
        audit_record(action="invoice.issued", subject_type="invoice", subject_id=invoice.pk,
                     account_id=account.pk, actor=ACTOR,
                     after={"number": invoice.number, "session_id": str(session.pk), "net": net, "vat": vat,
                            "gross": gross, "currency": invoice.currency, "vat_rate": invoice.vat_rate})
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


# ---------------------------------------------------------------- 2. PDF


def invoice_pdf_filename(invoice: Invoice) -> str:
    # The prefix is the merchant's to choose: keep only what is safe in a path and a header.
    return get_valid_filename(f"{invoice.number}.pdf")


def invoice_pdf_name(invoice: Invoice) -> str:
    return f"invoices/{invoice.account_id}/{invoice_pdf_filename(invoice)}"


def invoice_pdf_store(*, invoice: Invoice) -> str:
    if invoice.pdf_name and default_storage.exists(invoice.pdf_name):
        return invoice.pdf_name
    with transaction.atomic():
        _lock(invoice.session)
        invoice = Invoice.objects.get(pk=invoice.pk)
        if invoice.pdf_name and default_storage.exists(invoice.pdf_name):
            return invoice.pdf_name
        # Imported here: weasyprint is heavy, and web processes never render.
        from invoices_app.pdf import render_invoice_pdf

        pdf = render_invoice_pdf(invoice_document(invoice=invoice))
        name = invoice_pdf_name(invoice)
        # A file left by an attempt that died before recording it is replaced, not renamed.
        if default_storage.exists(name):
            default_storage.delete(name)
        saved = default_storage.save(name, ContentFile(pdf))
        digest = hashlib.sha256(pdf).hexdigest()
        Invoice.objects.filter(pk=invoice.pk).update(pdf_name=saved, pdf_sha256=digest)
        _mark(invoice.session, "pdf_stored_at")
        audit_record(action="invoice.pdf_stored", subject_type="invoice", subject_id=invoice.pk,
                     account_id=invoice.account_id, actor=ACTOR,
                     data={"name": saved, "sha256": digest, "bytes": len(pdf)})
    invoice.pdf_name, invoice.pdf_sha256 = saved, digest
    return saved


def invoice_pdf_bytes(*, invoice: Invoice) -> bytes | None:
    if not invoice.pdf_name:
        return None
    try:
        with default_storage.open(invoice.pdf_name, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- 3. buyer's key


def buyer_key_issue(*, session: PaymentSession) -> EntitlementKey | None:
    """The buyer's entitlement key of the selling merchant, one per session; its plain text is
    sealed until it is revealed once (access page, or the receipt when the merchant opts in)."""
    existing = EntitlementKey.objects.filter(session_id=session.pk).first()
    if existing:
        return existing
    if not session.customer_email:
        return None  # nobody to give it to; the merchant sees the session without a key
    with transaction.atomic():
        _lock(session)
        existing = EntitlementKey.objects.filter(session_id=session.pk).first()
        if existing:
            return existing
        entitlement = session.entitlement or {}
        issued = entitlement_key_issue(account=session.account, session_id=session.pk,
                                       customer_email=session.customer_email,
                                       expires_in_days=entitlement.get("expires_in_days"),
                                       metadata=entitlement.get("metadata") or {}, actor=ACTOR)
        KeyReveal.objects.create(entitlement_key=issued.key, session=session,
                                 ciphertext=secrets_box.seal(issued.plaintext))
        _mark(session, "key_issued_at")
        audit_record(action="fulfilment.key_issued", subject_type="payment_session", subject_id=session.pk,
                     account_id=session.account_id, actor=ACTOR,
                     data={"key_id": str(issued.key.pk), "key": issued.key.display, "mode": issued.key.mode})
    return issued.key


# ---------------------------------------------------------------- 4. access link


def access_link_create(*, session: PaymentSession, invoice: Invoice) -> AccessLink:
    existing = AccessLink.objects.filter(session=session).first()
    if existing:
        return existing
    with transaction.atomic():
        _lock(session)
        existing = AccessLink.objects.filter(session=session).first()
        if existing:
            return existing
        # Whole seconds: the token carries them, and the row must re-sign the same token.
        now = timezone.now().replace(microsecond=0)
        link = AccessLink.objects.create(session=session, invoice=invoice, created_at=now,
                                         expires_at=now + timedelta(seconds=settings.ACCESS_LINK_TTL_SECONDS))
        _mark(session, "link_created_at")
        audit_record(action="access_link.created", subject_type="access_link", subject_id=link.jti,
                     account_id=session.account_id, actor=ACTOR,
                     after={"session_id": str(session.pk), "expires_at": link.expires_at})
    return link


def access_token(link: AccessLink) -> str:
    return tokens.token_encode(jti=link.jti, session_id=link.session_id, issued_at=int(link.created_at.timestamp()),
                               expires_at=int(link.expires_at.timestamp()))


def access_url(link: AccessLink) -> str:
    return f"{settings.PUBLIC_BASE_URL}/access/{access_token(link)}"


@transaction.atomic
def access_link_revoke(*, link: AccessLink, actor: str, reason: str = "") -> AccessLink:
    """Staff: stop a link from working (410 from then on). Revoking twice changes nothing."""
    link = AccessLink.objects.select_for_update().get(pk=link.pk)
    if link.revoked_at:
        return link
    link.revoked_at = timezone.now()
    link.revoked_by = actor[:200]
    link.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(action="access_link.revoked", subject_type="access_link", subject_id=link.jti,
                 account_id=link.invoice.account_id, actor=actor, after={"revoked_at": link.revoked_at},
                 data={"reason": reason})
    return link


def access_link_use_record(*, link: AccessLink, action: str, ip: str | None = None, user_agent: str = "") -> None:
    AccessLinkUse.objects.create(link=link, action=action, ip=ip or None, user_agent=user_agent[:300])


def key_reveal(*, link: AccessLink, ip: str | None = None, user_agent: str = "") -> str | None:
    """The buyer's key in plain text, once. None when it was revealed before (or cannot be)."""
    with transaction.atomic():
        # The link row first: a revocation locks it before the audit chain, and so do we.
        AccessLink.objects.select_for_update(no_key=True).only("pk").get(pk=link.pk)
        reveal = KeyReveal.objects.select_for_update().filter(session_id=link.session_id).first()
        if reveal is None or reveal.revealed_at or not reveal.ciphertext:
            access_link_use_record(link=link, action=AccessLinkUse.Action.REVEAL_REFUSED, ip=ip,
                                   user_agent=user_agent)
            return None
        try:
            plaintext = secrets_box.open_sealed(reveal.ciphertext)
        except secrets_box.CannotOpen:
            logger.error("key of session %s cannot be unsealed (DJANGO_SECRET_KEY changed?)", link.session_id)
            return None
        reveal.ciphertext = ""
        reveal.revealed_at = timezone.now()
        reveal.save(update_fields=["ciphertext", "revealed_at"])
        access_link_use_record(link=link, action=AccessLinkUse.Action.REVEAL, ip=ip, user_agent=user_agent)
        audit_record(action="key.revealed", subject_type="entitlement_key", subject_id=reveal.entitlement_key_id,
                     account_id=link.invoice.account_id, actor=f"access_link:{link.jti}",
                     data={"session_id": str(link.session_id), "ip": ip})
    return plaintext


def key_rotate_by_customer(*, link: AccessLink, ip: str | None = None, user_agent: str = "") -> str:
    """The buyer replaces their key from the access page: the new key is returned (to be shown
    once) and the old one stops at once. Raises a domain error when the key cannot be replaced."""
    with transaction.atomic():
        # Same lock order as key_reveal: the link row, then the reveal.
        AccessLink.objects.select_for_update(no_key=True).only("pk").get(pk=link.pk)
        reveal = KeyReveal.objects.select_for_update().filter(session_id=link.session_id).first()
        key = entitlement_key_current_for_session(session_id=link.session_id)
        if key is None:
            raise errors.NotFound("key_not_found", "There is no key to replace yet.")
        issued = entitlement_key_rotate(key=key, overlap=timedelta(0), actor=f"access_link:{link.jti}")
        if reveal is not None:
            # Shown in this response only: nothing is left to reveal later.
            reveal.entitlement_key = issued.key
            reveal.ciphertext = ""
            reveal.revealed_at = timezone.now()
            reveal.save(update_fields=["entitlement_key", "ciphertext", "revealed_at"])
        access_link_use_record(link=link, action=AccessLinkUse.Action.ROTATE, ip=ip, user_agent=user_agent)
    return issued.plaintext


# ---------------------------------------------------------------- 5. emails


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
        _lock(session)
        record, _ = EmailRecord.objects.get_or_create(session=session, kind=kind, reference=reference,
                                                      defaults={"to": to})
        if record.sent_at:
            if step:
                _mark(session, step)  # a run that died between sending and marking
            return record
        now = timezone.now()
        lease = timedelta(seconds=settings.FULFILMENT_EMAIL_LEASE_SECONDS)
        if record.claimed_at and record.claimed_at + lease > now and not claims.holding(session.pk):
            raise EmailInFlight((record.claimed_at + lease - now).total_seconds())
        EmailRecord.objects.filter(pk=record.pk).update(claimed_at=now, attempts=F("attempts") + 1, to=to)
    message = build()
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
            _mark(session, step)
        audit_record(action=f"email.{kind}.sent", subject_type="payment_session", subject_id=session.pk,
                     account_id=session.account_id, actor=ACTOR, data={"to": to, "subject": message.subject})
    record.refresh_from_db()
    return record


def _one_line(text: str) -> str:
    # A merchant's name with a line break must not make the header invalid (or inject one).
    return " ".join(text.split())


def _message_id(session: PaymentSession, kind: str) -> str:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "localhost"
    return f"<{kind}.{session.pk}@{domain}>"


def _email_context(session: PaymentSession, invoice: Invoice) -> dict[str, Any]:
    return {"session": session, "invoice": invoice, "amount": money(invoice.gross, invoice.currency),
            "net": money(invoice.net, invoice.currency), "vat": money(invoice.vat, invoice.currency)}


def _sealed_key_for_email(session: PaymentSession) -> str | None:
    """The plain key for the receipt, when the merchant opted in and nobody has seen it yet."""
    if not session.account.email_key_to_customer:
        return None
    reveal = KeyReveal.objects.filter(session=session, revealed_at__isnull=True).exclude(ciphertext="").first()
    if reveal is None:
        return None
    try:
        return secrets_box.open_sealed(reveal.ciphertext)
    except secrets_box.CannotOpen:
        logger.error("key of session %s cannot be unsealed for the receipt", session.pk)
        return None


def _key_emailed(session: PaymentSession) -> None:
    """The receipt carried the key: it counts as revealed, and the access page says where it went."""
    now = timezone.now()
    with transaction.atomic():
        reveal = KeyReveal.objects.select_for_update().filter(session=session, emailed_at__isnull=True).first()
        if reveal is None:
            return
        reveal.ciphertext, reveal.emailed_at = "", now
        reveal.revealed_at = reveal.revealed_at or now
        reveal.save(update_fields=["ciphertext", "emailed_at", "revealed_at"])
        audit_record(action="key.emailed", subject_type="entitlement_key", subject_id=reveal.entitlement_key_id,
                     account_id=session.account_id, actor=ACTOR, data={"session_id": str(session.pk)})


def _receipt_reply_to(invoice: Invoice) -> list[str] | None:
    # The invoice's seller is the merchant account that sold (a snapshot taken at issue), and
    # only merchants' keys create sessions: nothing a buyer can set reaches these headers.
    return [invoice.seller_email] if invoice.seller_email else None


def receipt_send(*, session: PaymentSession, invoice: Invoice, link: AccessLink) -> EmailRecord | None:
    if not session.customer_email:
        return None
    emailed_key = False

    def build() -> EmailMultiAlternatives:
        nonlocal emailed_key
        plaintext = _sealed_key_for_email(session)
        emailed_key = plaintext is not None
        context = {**_email_context(session, invoice), "access_url": access_url(link),
                   "key": entitlement_key_current_for_session(session_id=session.pk), "plaintext_key": plaintext,
                   "expires_at": link.expires_at}
        message = EmailMultiAlternatives(
            subject=_one_line(f"Your receipt {invoice.number} from {invoice.seller_name}"),
            body=render_to_string("emails/receipt.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[session.customer_email],
            reply_to=_receipt_reply_to(invoice),
            headers={"Message-ID": _message_id(session, EmailRecord.Kind.RECEIPT)},
        )
        message.attach_alternative(render_to_string("emails/receipt.html", context), "text/html")
        pdf = invoice_pdf_bytes(invoice=invoice)
        if pdf is None:
            raise FileNotFoundError(f"PDF of {invoice.number} is missing")
        message.attach(invoice_pdf_filename(invoice), pdf, "application/pdf")
        return message

    record = _email_once(session=session, kind=EmailRecord.Kind.RECEIPT, to=session.customer_email,
                         step="email_sent_at", build=build)
    if emailed_key and record.sent_at:
        _key_emailed(session)
    return record


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


# ---------------------------------------------------------------- dashboard: resend


class ResendRefused(Exception):
    pass


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
    key = entitlement_key_current_for_session(session_id=session.pk)
    context = {**_email_context(session, invoice), "access_url": access_url(link), "key": key,
               "expires_at": link.expires_at}
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "localhost"
    message_id = make_msgid(idstring=f"receipt-resend.{session.pk}", domain=domain)
    message = EmailMultiAlternatives(
        subject=_one_line(f"Your receipt {invoice.number} from {invoice.seller_name}"),
        body=render_to_string("emails/receipt.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=[invoice.buyer_email],
        reply_to=_receipt_reply_to(invoice),
        headers={"Message-ID": message_id},
    )
    message.attach_alternative(render_to_string("emails/receipt.html", context), "text/html")
    message.attach(invoice_pdf_filename(invoice), pdf, "application/pdf")
    message.send()
    audit_record(action="email.receipt.resent", subject_type="invoice", subject_id=invoice.pk,
                 account_id=invoice.account_id, actor=actor, data={"to": invoice.buyer_email,
                                                                    "message_id": message_id})
    return invoice.buyer_email


# ---------------------------------------------------------------- customer: "email me my access links"

ACCESS_LINKS_MAX = 20


def access_links_send(*, email: str) -> int:
    """Send fresh access links for the paid sessions of `email` to that address, and only there.

    Each link's row gets a new validity (the token is re-signed from it); a link staff revoked
    stays revoked. Nothing is sent for an address without purchases: the caller answers the
    same words either way. Returns the number of links sent.
    """
    links = list(AccessLink.objects.select_related("session", "invoice")
                 .filter(Q(session__status=Status.PAID) | Q(session__fulfil_anyway_at__isnull=False),
                         session__customer_email__iexact=email, revoked_at__isnull=True)
                 .order_by("-created_at")[:ACCESS_LINKS_MAX])
    if not links:
        return 0
    now = timezone.now().replace(microsecond=0)
    expires_at = now + timedelta(seconds=settings.ACCESS_LINK_TTL_SECONDS)
    with transaction.atomic():
        for link in links:
            AccessLink.objects.filter(pk=link.pk).update(created_at=now, expires_at=expires_at)
            link.created_at, link.expires_at = now, expires_at
            audit_record(action="access_link.renewed", subject_type="access_link", subject_id=link.jti,
                         account_id=link.invoice.account_id, actor="customer:access_links",
                         after={"expires_at": expires_at})
    items = [{"seller_name": link.invoice.seller_name, "number": link.invoice.number,
              "amount": money(link.invoice.gross, link.invoice.currency), "url": access_url(link)} for link in links]
    context = {"items": items, "expires_at": expires_at}
    message = EmailMultiAlternatives(
        subject="Your access links", body=render_to_string("emails/access_links.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=[links[0].session.customer_email],
    )
    message.attach_alternative(render_to_string("emails/access_links.html", context), "text/html")
    message.send()
    return len(links)
