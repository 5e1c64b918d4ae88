"""What invoices_app does, by capability:

- fulfilment: the run of a paid session, its steps in order;
- steps: each step once (look, lock, look again, make, mark), and the session lock;
- numbering: the invoice, its gapless number and VAT, its refund;
- documents: the invoice PDF;
- keys: the buyer's key: issue, reveal once, rotate;
- access: the access link and its token, revocation, "email me my links";
- delivery: the emails of fulfilment, sent once, and the receipt's resend.

Import from those modules. The names below are the same functions, for callers of the former
single module; the modules of this package never import from here (that would be a cycle).
A test that patches a function patches it where it is defined, not here.
"""

from invoices_app.services.access import (
    access_link_create,
    access_link_revoke,
    access_link_use_record,
    access_links_send,
    access_token,
    access_url,
)
from invoices_app.services.delivery import (
    EmailInFlight,
    ResendRefused,
    late_payment_notify,
    merchant_notify,
    receipt_resend,
    receipt_send,
)
from invoices_app.services.documents import invoice_pdf_bytes, invoice_pdf_filename, invoice_pdf_name, invoice_pdf_store
from invoices_app.services.fulfilment import fulfilment_run
from invoices_app.services.keys import buyer_key_issue, key_reveal, key_rotate_by_customer
from invoices_app.services.numbering import invoice_issue, invoice_mark_refunded, vat_split

__all__ = [
    "EmailInFlight",
    "ResendRefused",
    "access_link_create",
    "access_link_revoke",
    "access_link_use_record",
    "access_links_send",
    "access_token",
    "access_url",
    "buyer_key_issue",
    "fulfilment_run",
    "invoice_issue",
    "invoice_mark_refunded",
    "invoice_pdf_bytes",
    "invoice_pdf_filename",
    "invoice_pdf_name",
    "invoice_pdf_store",
    "key_reveal",
    "key_rotate_by_customer",
    "late_payment_notify",
    "merchant_notify",
    "receipt_resend",
    "receipt_send",
    "vat_split",
]
