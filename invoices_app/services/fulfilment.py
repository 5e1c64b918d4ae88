"""The run that fulfils a paid session: invoice, PDF, the buyer's key, the access link, then the
emails, each step once (steps.py), and the session marked complete when all are done."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record
from invoices_app import claims
from invoices_app.models import Fulfilment
from invoices_app.services.access import access_link_create
from invoices_app.services.delivery import merchant_notify, receipt_send
from invoices_app.services.documents import invoice_pdf_store
from invoices_app.services.keys import buyer_key_issue
from invoices_app.services.numbering import invoice_issue
from invoices_app.services.steps import ACTOR
from sessions_app.models import PaymentSession

logger = logging.getLogger(__name__)


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
