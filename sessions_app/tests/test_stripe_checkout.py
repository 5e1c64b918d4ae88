"""Stripe Checkout: starting a Checkout Session, and its checkout.session.* and refund events."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider


class FakeCheckoutSessions:
    def __init__(self):
        self.calls = []

    def create(self, *, params, options):
        self.calls.append((params, options))
        return {"id": "cs_test_123", "url": "https://checkout.stripe.test/c/pay/cs_test_123"}


class FakeClient:
    def __init__(self):
        self.sessions = FakeCheckoutSessions()
        self.v1 = type("V1", (), {"checkout": type("Checkout", (), {"sessions": self.sessions})()})()


@pytest.fixture
def fake_stripe(monkeypatch, settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_" + "x" * 24
    settings.STRIPE_CHECKOUT_FLOW = "checkout"
    fake = FakeClient()
    monkeypatch.setattr(stripe_provider, "client", lambda mode: fake)
    return fake.sessions


def _session(api, **extra) -> PaymentSession:
    created = api.post("/create_session", {"amount": "19.90", "currency": "EUR", **extra}, format="json")
    return PaymentSession.objects.get(pk=created.json()["session_id"])


def _deliver(client, event: dict):
    body = json.dumps(event)
    return client.post("/webhooks/stripe", body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))


def test_pay_with_card_redirects_to_a_checkout_session_keyed_by_our_session(fake_stripe, api, client, settings):
    session = _session(api, customer_email="buyer@example.test", client_reference_id="order-7")

    response = client.post(f"/checkout/{session.pk}/pay/stripe")

    assert response.status_code == 302
    assert response["Location"] == "https://checkout.stripe.test/c/pay/cs_test_123"
    params, options = fake_stripe.calls[0]
    assert options == {"idempotency_key": str(session.pk)}
    assert params["client_reference_id"] == str(session.pk)
    assert params["metadata"]["session_id"] == str(session.pk)
    assert params["payment_intent_data"]["metadata"]["session_id"] == str(session.pk)
    assert params["line_items"][0]["price_data"]["unit_amount"] == 1990
    assert params["line_items"][0]["price_data"]["currency"] == "eur"
    assert params["customer_email"] == "buyer@example.test"
    assert params["success_url"].startswith(f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}")
    session.refresh_from_db()
    assert (session.provider, session.provider_reference, session.status) == ("stripe", "cs_test_123",
                                                                              Status.CREATED)


def test_pay_with_card_without_a_secret_key_says_so(api, client, settings):
    settings.STRIPE_TEST_SECRET_KEY = ""
    session = _session(api, customer_email="buyer@example.test")

    response = client.post(f"/checkout/{session.pk}/pay/stripe", HTTP_ACCEPT="application/json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_not_configured"


def test_the_card_button_shows_only_when_stripe_is_configured(api, client, settings):
    session = _session(api)
    settings.STRIPE_TEST_SECRET_KEY = ""
    assert "Pay with card" not in client.get(f"/checkout?session={session.pk}").text
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_" + "x" * 24
    assert "Pay with card" in client.get(f"/checkout?session={session.pk}").text


def test_checkout_session_completed_and_paid_pays_the_session(api, client):
    session = _session(api)
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="checkout.session.completed",
                                       amount=session.amount, currency="EUR")

    response = _deliver(client, event)

    assert response.json()["outcome"] == "processed"
    session.refresh_from_db()
    assert session.status == Status.PAID
    assert session.provider_reference == event["data"]["object"]["payment_intent"]


def test_an_unpaid_completed_checkout_waits_and_an_async_failure_fails(api, client):
    session = _session(api)
    completed = stripe_provider.test_event(session_id=str(session.pk), event_type="checkout.session.completed",
                                           amount=session.amount, currency="EUR")
    completed["data"]["object"]["payment_status"] = "unpaid"

    _deliver(client, completed)
    session.refresh_from_db()
    assert session.status == Status.PENDING

    _deliver(client, stripe_provider.test_event(session_id=str(session.pk),
                                                event_type="checkout.session.async_payment_failed",
                                                amount=session.amount, currency="EUR"))
    session.refresh_from_db()
    assert session.status == Status.FAILED


def test_an_expired_checkout_session_fails_the_session_as_expired(api, client):
    session = _session(api)

    _deliver(client, stripe_provider.test_event(session_id=str(session.pk), event_type="checkout.session.expired",
                                                amount=session.amount, currency="EUR"))

    session.refresh_from_db()
    assert (session.status, session.failure_reason) == (Status.FAILED, "expired")


def test_a_partial_charge_refunded_records_a_partial_refund_and_the_session_stays_paid(api, client):
    session = _session(api)
    paid = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                      amount=session.amount, currency="EUR")
    _deliver(client, paid)
    pi = paid["data"]["object"]["id"]
    refund = {"id": "evt_refund_1", "object": "event", "type": "charge.refunded", "livemode": False,
              "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": pi, "amount_refunded": 990,
                                  "currency": "eur", "metadata": {"session_id": str(session.pk)}}}}

    response = _deliver(client, refund)
    again = _deliver(client, refund)

    assert response.json()["outcome"] == "processed"
    assert again.json()["outcome"] == "duplicate"
    session.refresh_from_db()
    # a partial refund is partial: the session stays paid and is not "refunded"
    assert (session.status, session.refund_status, str(session.amount_refunded)) == (
        Status.PAID, "partially_refunded", "9.900")
    assert WebhookEvent.objects.get(event_id="evt_refund_1").event_type == "charge.refunded"
    assert AuditEvent.objects.filter(action="refund.succeeded").count() == 1
