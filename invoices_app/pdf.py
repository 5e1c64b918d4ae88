"""Invoice PDF rendering with weasyprint. Workers only: never called from a web request."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.request import url2pathname

from django.conf import settings
from django.template.loader import render_to_string
from weasyprint import HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher

from invoices_app.selectors import InvoiceDocument

# One per process: a new FontConfiguration per render leaks ~0.25 MB each time.
_FONT_CONFIG = FontConfiguration()


# What an invoice may load: our bundled static files, nothing else.
STATIC_DIR = (Path(settings.BASE_DIR) / "static").resolve()


class BundledStaticFetcher(URLFetcher):
    """weasyprint's fetcher, limited to files under static/ (and self-contained data: URLs).

    The default one fetches any URL, http(s) and file: alike: text a merchant or customer wrote that
    ever reached the page as a URL would have a worker read local files or call internal hosts.
    """

    def __init__(self) -> None:
        super().__init__(timeout=1, allowed_protocols={"file", "data"}, allow_redirects=False, fail_on_errors=False)

    def fetch(self, url, headers=None):
        if url[:5].lower() == "file:":
            local = url.split("?", 1)[0].split("#", 1)[0][5:]
            path = Path(url2pathname(local)).resolve()
            if not path.is_relative_to(STATIC_DIR) or not path.is_file():
                raise ValueError("Only the bundled static files are available to invoice rendering.")
        return super().fetch(url, headers)


def invoice_html(html: str) -> HTML:
    """The document weasyprint lays out: relative URLs resolve under static/, and only there."""
    return HTML(string=html, base_url=STATIC_DIR.as_uri() + "/", url_fetcher=BundledStaticFetcher())


def _render_pdf(template: str, context: dict, *, identity: str) -> bytes:
    document = invoice_html(render_to_string(template, context)).render(font_config=_FONT_CONFIG)
    # The creation date comes from the document (a <meta> in the template) and the file
    # identifier from `identity`, so the same document always gives the same bytes.
    identifier = hashlib.sha256(identity.encode()).hexdigest()[:32].encode()
    return document.write_pdf(pdf_identifier=identifier)


def render_invoice_pdf(data: InvoiceDocument) -> bytes:
    return _render_pdf("invoices/invoice_pdf.html", {"invoice": data}, identity=f"{data.session_id}:{data.number}")


def render_credit_note_pdf(data) -> bytes:
    """A credit note (invoices_app.services.credit_notes.CreditNoteDocument), as the invoice."""
    return _render_pdf("invoices/credit_note_pdf.html", {"note": data}, identity=f"{data.refund_id}:{data.number}")
