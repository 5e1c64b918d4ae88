"""Celery shells around the fulfilment services: retried on transient errors, safe to rerun."""

from __future__ import annotations

import logging
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from core.logs import request_id_var
from invoices_app import handoff
from invoices_app.services import access, credit_notes, delivery, fulfilment, refund_claims

logger = logging.getLogger(__name__)

# SMTPException and storage errors are OSErrors; the database and the broker have their own.
TRANSIENT = (SMTPException, OSError, OperationalError, InterfaceError, BrokerError)


# Retried on transient errors with exponential backoff and jitter; safe to rerun.
RETRIED = {"bind": True, "acks_late": True, "autoretry_for": TRANSIENT, "retry_backoff": True,
           "retry_backoff_max": 600, "retry_jitter": True, "max_retries": settings.FULFILMENT_MAX_RETRIES}


@shared_task(**RETRIED)
def fulfil_session(self, session_id: str) -> None:
    try:
        fulfilment.fulfilment_run(session_id=session_id)
    except delivery.EmailInFlight as exc:
        raise self.retry(exc=exc, countdown=max(1, int(exc.retry_in) + 1)) from None


@shared_task(acks_late=True, ignore_result=True)
def fulfil_sessions(items: list[dict]) -> None:
    """A batch from the relay (invoices_app/relay.py): each session as fulfil_session would do it.

    A session that fails here is handed to fulfil_session, whose retries and backoff apply.
    """

    for item in items:
        session_id = str(item.get("session_id", ""))
        # The log lines of each session carry the request id of the webhook that paid it.
        token = request_id_var.set(str(item.get("request_id") or "-"))
        try:
            logger.info("fulfil_session %s (from a batch of %d)", session_id, len(items))
            fulfilment.fulfilment_run(session_id=session_id)
        except Exception as exc:
            logger.warning("fulfilment of session %s failed in a batch (%s); retrying on its own",
                           session_id, type(exc).__name__)
            fulfil_session.apply_async(args=[session_id], countdown=1)
        finally:
            request_id_var.reset(token)


@shared_task(**RETRIED)
def notify_late_payment(self, late_payment_id: int) -> None:
    try:
        delivery.late_payment_notify(late_payment_id=late_payment_id)
    except delivery.EmailInFlight as exc:
        raise self.retry(exc=exc, countdown=max(1, int(exc.retry_in) + 1)) from None


@shared_task(**RETRIED)
def deliver_credit_note(self, credit_note_id: int) -> None:
    try:
        credit_notes.credit_note_deliver(credit_note_id=credit_note_id)
    except delivery.EmailInFlight as exc:
        raise self.retry(exc=exc, countdown=max(1, int(exc.retry_in) + 1)) from None


@shared_task(**RETRIED)
def email_refund_claim(self, refund_id: str) -> None:
    try:
        refund_claims.refund_claim_email(refund_id=refund_id)
    except delivery.EmailInFlight as exc:
        raise self.retry(exc=exc, countdown=max(1, int(exc.retry_in) + 1)) from None


@shared_task(acks_late=True, ignore_result=True)
def fulfilment_safety_net() -> int:
    return handoff.fulfilment_safety_net()


@shared_task(acks_late=True, ignore_result=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def access_links_email(email: str) -> None:
    access.access_links_send(email=email)
