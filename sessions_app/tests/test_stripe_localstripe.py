"""Stripe end to end against localstripe, a fake but stateful Stripe server on 127.0.0.1.

Our code creates the PaymentIntent through the stripe SDK; the test confirms it as the customer's
browser would; localstripe delivers the signed webhook to /webhooks/stripe on a live server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import stripe

from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider

WRAPPER = Path(__file__).resolve().parents[2] / "tests" / "fakes" / "localstripe_server.py"
API_KEY = "sk_test_" + "localstripe0123456789abcdef"
WEBHOOK_SECRET = "whsec_localstripe_e2e_secret"

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def localstripe(tmp_path):
    process = subprocess.Popen([sys.executable, str(WRAPPER), str(tmp_path)],  # noqa: S603
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=5)


def _settled() -> tuple:
    from invoices_app.models import Fulfilment

    return (WebhookEvent.objects.count(), Fulfilment.objects.filter(completed_at__isnull=True).count(),
            Fulfilment.objects.count())


def _wait_until_quiet(*, quiet_for: float = 1.0, timeout: float = 15.0) -> None:
    """localstripe sends further events after a payment, and the live server fulfils a paid
    session after its webhook commits: let that work end before the database is emptied."""
    deadline = time.monotonic() + timeout
    last, since = _settled(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _settled()
        if now != last:
            last, since = now, time.monotonic()
        elif now[1] == 0 and time.monotonic() - since >= quiet_for:
            return


@pytest.fixture
def stripe_setup(localstripe, live_server, settings, merchant):
    settings.STRIPE_TEST_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = localstripe
    settings.STRIPE_CHECKOUT_FLOW = "payment_intent"
    settings.STRIPE_TEST_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    settings.PUBLIC_BASE_URL = live_server.url
    form = urllib.parse.urlencode({"url": f"{live_server.url}/webhooks/stripe", "secret": WEBHOOK_SECRET}).encode()
    with urllib.request.urlopen(f"{localstripe}/_config/webhooks/payments", data=form, timeout=10) as response:  # noqa: S310
        assert response.status == 200
    yield stripe.StripeClient(API_KEY, base_addresses={"api": localstripe})
    _wait_until_quiet()


def _wait_for(session: PaymentSession, status: str, *, timeout: float = 20.0) -> PaymentSession:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.refresh_from_db()
        if session.status == status:
            return session
        time.sleep(0.1)
    raise AssertionError(f"session stayed {session.status}, expected {status}")


def _start_card_payment(api, client, payment_method: str) -> tuple[PaymentSession, dict]:
    created = api.post("/create_session", {"amount": "42.50", "currency": "EUR",
                                           "customer_email": "buyer@example.test"}, format="json")
    session = PaymentSession.objects.get(pk=created.json()["session_id"])
    response = client.post(f"/checkout/{session.pk}/pay/stripe", {"payment_method": payment_method},
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return session, response.json()


def test_a_card_payment_confirmed_at_localstripe_pays_the_session(stripe_setup, api, client):
    # given a PaymentIntent our code created for the session
    session, started = _start_card_payment(api, client, "pm_card_visa")
    intent = stripe_setup.v1.payment_intents.retrieve(started["payment_intent"])
    assert intent["amount"] == 4250 and intent["currency"] == "eur"
    assert intent["metadata"]["session_id"] == str(session.pk)
    session.refresh_from_db()
    assert session.provider_reference == intent["id"]

    # when the customer's card confirms it
    stripe_setup.v1.payment_intents.confirm(intent["id"])

    # then localstripe's signed payment_intent.succeeded pays the session
    session = _wait_for(session, Status.PAID)
    assert session.provider_reference == intent["id"]
    event = WebhookEvent.objects.get(session=session, event_type="payment_intent.succeeded")
    assert event.outcome == "processed"


def test_a_declined_card_at_localstripe_is_an_attempt_and_another_card_pays(stripe_setup, api, client):
    session, started = _start_card_payment(api, client, "pm_card_chargeCustomerFail")

    # when the first card is declined
    with pytest.raises(stripe.StripeError):
        stripe_setup.v1.payment_intents.confirm(started["payment_intent"])

    # then the attempt is recorded and the session stays open
    deadline = time.monotonic() + 20
    while not WebhookEvent.objects.filter(session=session, event_type="payment_intent.payment_failed").exists():
        assert time.monotonic() < deadline, "the payment_failed event never arrived"
        time.sleep(0.1)
    session.refresh_from_db()
    assert session.status in (Status.CREATED, Status.PENDING)
    assert session.payment_attempts_failed == 1 and session.last_payment_error_code

    # and when the customer's next card succeeds on the same PaymentIntent (localstripe cannot
    # confirm one twice, so Stripe's signed event stands in), the session is paid
    succeeded = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                           amount=session.amount, currency=session.currency)
    succeeded["data"]["object"]["id"] = started["payment_intent"]
    body = json.dumps(succeeded)
    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert response.json()["outcome"] == "processed"
    assert _wait_for(session, Status.PAID).provider_reference == started["payment_intent"]


def test_starting_twice_returns_the_same_payment_intent(stripe_setup, api, client):
    session, first = _start_card_payment(api, client, "pm_card_visa")

    again = client.post(f"/checkout/{session.pk}/pay/stripe", {"payment_method": "pm_card_visa"},
                        HTTP_ACCEPT="application/json").json()

    assert again["payment_intent"] == first["payment_intent"]
    assert len(stripe_setup.v1.payment_intents.list()["data"]) == 1


def test_an_unreachable_stripe_gives_a_clear_error_not_a_500(settings, api, client, merchant):
    settings.STRIPE_TEST_SECRET_KEY = API_KEY
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_CHECKOUT_FLOW = "payment_intent"
    created = api.post("/create_session", {"amount": "5.00", "customer_email": "b@example.test"}, format="json")

    response = client.post(f"/checkout/{created.json()['session_id']}/pay/stripe", HTTP_ACCEPT="application/json")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"
