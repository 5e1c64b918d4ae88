"""The events a session reports to its merchant (events_app): their types and data snapshots.

Built by hand in JSON types, so that the one-statement paths can store them without a round trip
through the encoder.
"""

from __future__ import annotations

from typing import Any

from core import currencies
from core.formatting import iso_utc
from events_app.models import Event
from events_app.services import event_build, event_emit
from sessions_app.models import PaymentSession, Status


def session_data(session: PaymentSession, **extra: Any) -> dict[str, Any]:
    return {"object": "session", "id": str(session.pk), "status": session.status, "amount": str(currencies.in_minor_units(session.amount, session.currency)),
            "currency": session.currency, "livemode": session.mode == "live",
            "client_reference_id": session.client_reference_id or None, "metadata": session.metadata,
            "customer_email": session.customer_email or None, "provider": session.provider or None,
            "provider_reference": session.provider_reference or None, "created_at": iso_utc(session.created_at),
            "expires_at": iso_utc(session.expires_at), "paid_at": iso_utc(session.paid_at),
            "failure_reason": session.failure_reason or None, **extra}


def transition_type(session: PaymentSession) -> str:
    """The event of the state a session just moved to."""
    if session.status == Status.FAILED and session.failure_reason == "expired":
        return "session.expired"
    return f"session.{session.status}"


def session_event(session: PaymentSession, type: str, **extra: Any) -> Event:
    """The event in memory, for the one-statement paths (events_app.services.event_insert_statement)."""
    return event_build(account_id=session.account_id, mode=session.mode, type=type,
                       data=session_data(session, **extra), object_id=str(session.pk))


def session_emit(session: PaymentSession, type: str, **extra: Any) -> Event:
    """Record the event inside the transaction that writes the change."""
    return event_emit(account_id=session.account_id, mode=session.mode, type=type,
                      data=session_data(session, **extra), object_id=str(session.pk))
