"""How a session to deliver reaches the fulfilment workers, and the safety net behind it.

On PostgreSQL with Redis, paid sessions reach the workers through the relay (relay.py), and
on_session_paid publishes nothing. Otherwise (SQLite, another broker, the embedded default) the
receivers queue here. Whatever is lost on the way is found by the safety net below.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import Task, current_app
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from core.background import run_in_background
from invoices_app.models import CreditNote, Fulfilment, KeyReveal
from invoices_app.selectors import sessions_needing_fulfilment
from sessions_app.models import PaymentSession

logger = logging.getLogger(__name__)


def _task(name: str) -> Task:
    # By name from the app's registry: invoices_app.tasks imports this module, so it is not imported here.
    return current_app.tasks[f"invoices_app.tasks.{name}"]


def _apply(name: str, arg) -> None:
    _task(name).apply(args=[arg])


def _queue(name: str, arg, failure: str) -> bool:
    """Queue a task of one argument; a broker failure is logged (`failure`) and swallowed."""
    if current_app.conf.task_always_eager and settings.FULFILMENT_EAGER_BACKGROUND:
        # No broker (the embedded default): still keep PDF rendering and SMTP out of the web
        # request, on one background thread of this process.
        run_in_background("fulfilment", _apply, name, arg)
        return True
    try:
        _task(name).delay(arg)
    except Exception:
        logger.exception(failure, arg)
        return False
    return True


def fulfilment_queue(*, session_id: uuid.UUID | str) -> bool:
    """Queue fulfil_session. A broker failure is logged and swallowed: the safety net re-queues."""
    return _queue("fulfil_session", str(session_id), "could not queue fulfilment of session %s; the safety net will retry")


def late_payment_queue(*, late_payment_id: int) -> bool:
    """Queue the merchant's late-payment email (in-process without a broker, like fulfilment)."""
    try:
        _task("notify_late_payment").delay(late_payment_id)
    except Exception:
        logger.exception("could not queue the late-payment email %s", late_payment_id)
        return False
    return True


def credit_note_queue(*, credit_note_id: int) -> bool:
    """Queue a credit note's PDF and email (in-process without a broker, like fulfilment)."""
    return _queue("deliver_credit_note", credit_note_id, "could not queue credit note %s; the safety net will retry")


def refund_claim_queue(*, refund_id) -> bool:
    """Queue the crypto refund's claim-link email to the customer."""
    try:
        _task("email_refund_claim").delay(str(refund_id))
    except Exception:
        logger.exception("could not queue the refund claim email %s", refund_id)
        return False
    return True


def fulfilment_safety_net(*, now=None, older_than_seconds: int | None = None, limit: int = 200) -> int:
    """Re-queue paid sessions whose fulfilment is unfinished (Redis was down, a worker died)."""
    now = now or timezone.now()
    age = timedelta(seconds=settings.FULFILMENT_RETRY_AFTER_SECONDS if older_than_seconds is None
                    else older_than_seconds)
    queued = 0
    for session_id in list(sessions_needing_fulfilment(paid_before=now - age, queued_before=now - age, limit=limit)):
        Fulfilment.objects.get_or_create(session_id=session_id)
        if not fulfilment_queue(session_id=session_id):
            break  # the broker is down: the next run tries again
        Fulfilment.objects.filter(pk=session_id).update(queued_at=now)
        account_id = PaymentSession.objects.filter(pk=session_id).values_list("account_id", flat=True).first()
        audit_record(action="fulfilment.requeued", subject_type="payment_session", subject_id=session_id,
                     account_id=account_id, actor="system:safety_net")
        queued += 1
    # Credit notes whose PDF or email a lost task left undone.
    undelivered = (CreditNote.objects.filter(issued_at__lte=now - age)
                   .filter(Q(pdf_name="") | Q(emailed_at__isnull=True) & ~Q(buyer_email=""))
                   .values_list("pk", flat=True)[:limit])
    for note_id in list(undelivered):
        if not credit_note_queue(credit_note_id=note_id):
            break
    # A key nobody revealed while its link was valid can never be revealed: drop its ciphertext.
    stale = now - timedelta(seconds=settings.ACCESS_LINK_TTL_SECONDS + 24 * 3600)
    KeyReveal.objects.filter(revealed_at__isnull=True, created_at__lt=stale).exclude(ciphertext="").update(
        ciphertext="")
    return queued
