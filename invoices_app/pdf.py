"""Invoice PDF rendering with weasyprint. Workers only: never called from a web request."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration

from invoices_app.selectors import InvoiceDocument

# One per process: a new FontConfiguration per render leaks ~0.25 MB each time.
_FONT_CONFIG = FontConfiguration()


def render_invoice_pdf(data: InvoiceDocument) -> bytes:
    html = render_to_string("invoices/invoice_pdf.html", {"invoice": data})
    document = HTML(string=html, base_url=str(settings.BASE_DIR)).render(font_config=_FONT_CONFIG)
    # The creation date comes from the invoice (a <meta> in the template) and the file
    # identifier from its number, so the same invoice always gives the same bytes.
    identifier = hashlib.sha256(f"{data.session_id}:{data.number}".encode()).hexdigest()[:32].encode()
    return document.write_pdf(pdf_identifier=identifier)


def render_credit_note_pdf(data) -> bytes:
    """A credit note (invoices_app.services.credit_notes.CreditNoteDocument), as the invoice."""
    html = render_to_string("invoices/credit_note_pdf.html", {"note": data})
    document = HTML(string=html, base_url=str(settings.BASE_DIR)).render(font_config=_FONT_CONFIG)
    identifier = hashlib.sha256(f"{data.refund_id}:{data.number}".encode()).hexdigest()[:32].encode()
    return document.write_pdf(pdf_identifier=identifier)
