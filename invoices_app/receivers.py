"""invoices_app listens to the session lifecycle; sessions_app never imports fulfilment."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from invoices_app import handoff
from invoices_app.models import AccessLink
from invoices_app.relay import relay_active
from invoices_app.services.access import access_url, mail_allowed
from invoices_app.services.numbering import credit_note_issue, invoice_mark_refunded

logger = logging.getLogger(__name__)


def on_session_paid(sender, session_id, **kwargs) -> None:
    # Runs on commit of the paid transition. Where the relay runs (PostgreSQL and Redis), the
    # session reaches the workers through it (relay.py: the NOTIFY, or its look back) and the
    # request publishes nothing. Otherwise it is queued here; a broker failure must not fail the
    # webhook: fulfilment_queue logs it, and the beat safety net re-queues the session.
    if relay_active():
        return
    handoff.fulfilment_queue(session_id=session_id)


def on_session_late_payment(sender, session_id, late_payment_id, **kwargs) -> None:
    # The merchant hears at once; a broker failure must not fail the webhook (logged here; the
    # payment itself is stored and shown under "paid after expiry" in the dashboard).
    handoff.late_payment_queue(late_payment_id=late_payment_id)


def on_refund_succeeded(sender, refund, **kwargs) -> None:
    # Inside the transaction that marks the refund succeeded: the credit note and its number
    # commit with it or not at all. Its PDF and email go to the workers once it has committed.
    note = credit_note_issue(refund=refund)
    if refund.session.refund_status == "refunded":
        invoice_mark_refunded(session_id=refund.session_id, refund_id=str(refund.pk))
    transaction.on_commit(partial(handoff.credit_note_queue, credit_note_id=note.pk))


def on_refund_claim_requested(sender, refund_id, **kwargs) -> None:
    handoff.refund_claim_queue(refund_id=refund_id)


def on_test_session_delivery_shown(sender, session, **kwargs) -> dict:
    """A paid test session whose receipt went to the log: its access link, for the page to show."""
    link = AccessLink.objects.filter(session_id=session.pk, revoked_at__isnull=True).first()
    if link is None or not session.customer_email:
        return {}
    if mail_allowed(session, session.customer_email):
        return {}
    return {"test_receipt_logged": True, "test_access_url": access_url(link)}
