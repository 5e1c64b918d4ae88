"""What invoices_app does, by capability:

- fulfilment: the run of a paid session, its steps in order;
- steps: each step once (look, lock, look again, make, mark), and the session lock;
- numbering: the invoice, its gapless number and VAT, its refund;
- documents: the invoice PDF;
- keys: the buyer's key: issue, reveal once, rotate;
- access: the access link and its token, revocation, "email me my links";
- delivery: the emails of fulfilment, sent once, and the receipt's resend.

Import from those modules: this package re-exports nothing, so each function has one name.
"""
