"""Celery shells around the fulfilment services: retried on transient errors, safe to rerun."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from invoices_app import services

# SMTPException and storage errors are OSErrors; the database and the broker have their own.
TRANSIENT = (SMTPException, OSError, OperationalError, InterfaceError, BrokerError)


@shared_task(bind=True, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=600,
             retry_jitter=True, max_retries=settings.FULFILMENT_MAX_RETRIES)
def fulfil_session(self, session_id: str) -> None:
    try:
        services.fulfilment_run(session_id=session_id)
    except services.EmailInFlight as exc:
        raise self.retry(exc=exc, countdown=max(1, int(exc.retry_in) + 1)) from None


@shared_task(acks_late=True, ignore_result=True)
def fulfilment_safety_net() -> int:
    return services.fulfilment_safety_net()
