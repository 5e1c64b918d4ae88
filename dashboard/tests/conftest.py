from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from keys_app.services import merchant_login_create
from sessions_app.models import PaymentSession, WebhookEvent


def make_session(account, *, amount="10.00", currency="EUR", mode="test", status="created", when=None,
                 failure_reason="", customer_email="", provider="", **extra) -> PaymentSession:
    """A session in a given state, written directly: these tests are about reading, not transitions."""
    when = when or timezone.now()
    return PaymentSession.objects.create(
        account=account, amount=Decimal(amount), currency=currency, mode=mode, status=status, created_at=when,
        expires_at=when + timedelta(hours=24), paid_at=when if status == "paid" else None,
        failed_at=when if status == "failed" else None, failure_reason=failure_reason,
        customer_email=customer_email, provider=provider or ("stripe" if status in ("paid", "failed") else ""),
        **extra,
    )


def make_delivery(session, *, event_id, outcome="processed", event_type="payment_intent.succeeded"):
    return WebhookEvent.objects.create(provider="stripe", event_id=event_id, event_type=event_type,
                                       payload={"id": event_id, "type": event_type}, outcome=outcome,
                                       session=session, account_id=session.account_id)


@pytest.fixture
def merchant_user(merchant):
    return merchant_login_create(account=merchant).user


@pytest.fixture
def other_merchant_user(other_merchant):
    return merchant_login_create(account=other_merchant).user


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_superuser("staff", "staff@payments.test", "staff-password-123")


@pytest.fixture
def merchant_client(client, merchant_user):
    client.force_login(merchant_user)
    return client


@pytest.fixture
def staff_client(staff_user):
    # Its own client: a test may hold a merchant's and a staff member's sessions side by side.
    client = Client()
    client.force_login(staff_user)
    return client
