"""A credit note's PDF (rendered by a worker, stored once) and its email to the customer (sent once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import get_valid_filename

from audit.services import audit_record
from core.formatting import money
from invoices_app.models import AccessLink, CreditNote, EmailRecord
from invoices_app.services.access import access_url
from invoices_app.services.delivery import _email_once, _mail_domain, _one_line
from invoices_app.services.documents import pdf_read, pdf_save
from invoices_app.services.steps import ACTOR


@dataclass(frozen=True)
class CreditNoteDocument:
    """Everything the credit-note PDF shows: rendering it twice gives the same bytes."""

    number: str
    test: bool
    issue_date: date
    issued_at: datetime
    invoice_number: str
    seller_name: str
    seller_address: str
    seller_vat_id: str
    buyer_name: str
    buyer_email: str
    reason: str
    vat_rate: str
    net: str
    vat: str
    gross: str
    session_id: str
    refund_id: str


REASONS = {"requested_by_customer": "Requested by the customer", "duplicate": "Duplicate payment",
           "fraudulent": "Fraudulent payment", "other": "Other"}


def credit_note_document(*, note: CreditNote) -> CreditNoteDocument:
    cur = note.currency
    return CreditNoteDocument(
        number=note.number, test=note.mode == "test", issue_date=note.issue_date, issued_at=note.issued_at,
        invoice_number=note.invoice_number, seller_name=note.seller_name, seller_address=note.seller_address,
        seller_vat_id=note.seller_vat_id, buyer_name=note.buyer_name, buyer_email=note.buyer_email,
        reason=REASONS.get(note.reason, note.reason), vat_rate=f"{note.vat_rate.normalize():f}",
        net=money(note.net, cur), vat=money(note.vat, cur), gross=money(note.gross, cur),
        session_id=str(note.session_id), refund_id=str(note.refund_id))


def credit_note_pdf_filename(note: CreditNote) -> str:
    return get_valid_filename(f"{note.number}.pdf")


def credit_note_pdf_store(*, note: CreditNote) -> str:
    """Render and store the PDF once; a second call finds it stored. Sets note.pdf_name and pdf_sha256."""
    if note.pdf_name and default_storage.exists(note.pdf_name):
        return note.pdf_name
    # Imported here: weasyprint is heavy, and web processes never render.
    from invoices_app.pdf import render_credit_note_pdf

    pdf = render_credit_note_pdf(credit_note_document(note=note))
    saved, digest = pdf_save(note, f"credit_notes/{note.account_id}/{credit_note_pdf_filename(note)}", pdf)
    audit_record(action="credit_note.pdf_stored", subject_type="credit_note", subject_id=note.pk,
                 account_id=note.account_id, actor=ACTOR, data={"name": saved, "sha256": digest, "bytes": len(pdf)})
    return saved


def credit_note_pdf_bytes(*, note: CreditNote) -> bytes | None:
    return pdf_read(note.pdf_name)


def credit_note_email(*, note: CreditNote) -> EmailRecord | None:
    """The credit note to the customer, once, with the PDF and the access link (which stays valid)."""
    session = note.session
    if not session.customer_email:
        return None
    link = AccessLink.objects.filter(session=session, revoked_at__isnull=True).first()

    def build() -> EmailMultiAlternatives:
        pdf = credit_note_pdf_bytes(note=note)
        if pdf is None:
            raise FileNotFoundError(f"PDF of {note.number} is missing")
        context = {"note": note, "test": note.mode == "test", "amount": money(note.gross, note.currency),
                   "reason": REASONS.get(note.reason, note.reason),
                   "access_url": access_url(link) if link and link.expires_at > timezone.now() else ""}
        subject = f"Credit note {note.number} from {note.seller_name}: {context['amount']} refunded"
        message = EmailMultiAlternatives(
            subject=_one_line(("[TEST] " if note.mode == "test" else "") + subject),
            body=render_to_string("emails/credit_note.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[session.customer_email],
            headers={"Message-ID": f"<credit_note.{note.pk}@{_mail_domain()}>"})
        message.attach(credit_note_pdf_filename(note), pdf, "application/pdf")
        return message

    record = _email_once(session=session, kind=EmailRecord.Kind.CREDIT_NOTE, to=session.customer_email, step=None,
                         build=build, reference=str(note.pk))
    if record.sent_at and note.emailed_at is None:
        CreditNote.objects.filter(pk=note.pk).update(emailed_at=record.sent_at)
    return record


def credit_note_deliver(*, credit_note_id: int) -> CreditNote | None:
    """PDF, then email: each once, so a retry after a failure finishes what is left."""
    note = CreditNote.objects.select_related("session").filter(pk=credit_note_id).first()
    if note is None:
        return None
    credit_note_pdf_store(note=note)
    credit_note_email(note=note)
    return note
