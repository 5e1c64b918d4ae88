"""Helpers for the refund tests: a paid session (through the signed webhook path) and its refunds."""

from __future__ import annotations

import json
from decimal import Decimal

from keys_app.models import Mode
from keys_app.services import key_issue
from sessions_app.lifecycle import payment_event_apply
from sessions_app.models import PaymentSession
from sessions_app.providers import stripe_provider
from sessions_app.services import session_create


def paid_session(merchant, *, amount: str = "100.00", currency: str = "EUR", mode: str = Mode.TEST,
                 email: str = "buyer@example.test", **fields) -> PaymentSession:
    key = merchant.api_key
    if key.mode != mode:
        key = key_issue(account=merchant, mode=mode).api_key
    session = session_create(account=merchant, api_key=key, amount=Decimal(amount), currency=currency, mode=mode,
                             customer_email=email, description="Pro plan", **fields)
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                       amount=session.amount, currency=currency, livemode=mode == Mode.LIVE)
    payment_event_apply(stripe_provider.parse(json.dumps(event).encode()))
    session.refresh_from_db()
    return session


def refund(api, session, body: dict | None = None, **headers):
    return api.post(f"/sessions/{session.pk}/refunds", body if body is not None else {"reason": "requested_by_customer"},
                    format="json", **headers)
