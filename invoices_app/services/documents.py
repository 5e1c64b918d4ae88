"""The invoice PDF: rendered once by a worker, stored, and read back for the buyer and staff."""

from __future__ import annotations

import hashlib
from functools import cache

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils.text import get_valid_filename

from audit.services import audit_record
from invoices_app.models import CreditNote, Invoice
from invoices_app.selectors import invoice_document
from invoices_app.services.steps import ACTOR, step_once


def invoice_pdf_filename(invoice: Invoice) -> str:
    # The prefix is the merchant's to choose: keep only what is safe in a path and a header.
    return get_valid_filename(f"{invoice.number}.pdf")


def invoice_pdf_name(invoice: Invoice) -> str:
    return f"invoices/{invoice.account_id}/{invoice_pdf_filename(invoice)}"


def invoice_pdf_store(*, invoice: Invoice) -> str:
    # Under the lock, the row as it is now: read once, for the look and for the PDF.
    locked_row = cache(lambda: Invoice.objects.get(pk=invoice.pk))
    return step_once(session_id=invoice.session_id, mark="pdf_stored_at",
                     look=lambda: _stored_pdf(invoice), find=lambda: _stored_pdf(locked_row()),
                     make=lambda: _pdf_render_and_store(locked_row()))


def _stored_pdf(invoice: Invoice) -> str | None:
    return invoice.pdf_name if invoice.pdf_name and default_storage.exists(invoice.pdf_name) else None


def _pdf_render_and_store(invoice: Invoice) -> str:
    # Imported here: weasyprint is heavy, and web processes never render.
    from invoices_app.pdf import render_invoice_pdf

    pdf = render_invoice_pdf(invoice_document(invoice=invoice))
    saved, digest = pdf_save(invoice, invoice_pdf_name(invoice), pdf)
    audit_record(action="invoice.pdf_stored", subject_type="invoice", subject_id=invoice.pk,
                 account_id=invoice.account_id, actor=ACTOR,
                 data={"name": saved, "sha256": digest, "bytes": len(pdf)})
    return saved


def pdf_save(document: Invoice | CreditNote, name: str, pdf: bytes) -> tuple[str, str]:
    """Store a rendered PDF under `name` and record it on the document's row (and the instance)."""
    # A file left by an attempt that died before recording it is replaced, not renamed.
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, ContentFile(pdf))
    digest = hashlib.sha256(pdf).hexdigest()
    type(document).objects.filter(pk=document.pk).update(pdf_name=saved, pdf_sha256=digest)
    document.pdf_name, document.pdf_sha256 = saved, digest
    return saved, digest


def pdf_read(name: str) -> bytes | None:
    """A stored PDF's bytes; None when none was recorded or its file is gone."""
    if not name:
        return None
    try:
        with default_storage.open(name, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def invoice_pdf_bytes(*, invoice: Invoice) -> bytes | None:
    return pdf_read(invoice.pdf_name)
