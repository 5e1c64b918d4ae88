"""Card refunds end to end against localstripe: our refund through the SDK, a refund made in
Stripe's dashboard seen by its webhook, and refunds that fail."""

from __future__ import annotations

import json
import time

import pytest

from sessions_app.models import PaymentSession, Refund, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.tests import test_stripe_localstripe as card
from sessions_app.tests.test_stripe_localstripe import _start_card_payment, _wait_for

# The localstripe server and its configured client, as in the card payment tests.
localstripe = card.localstripe
stripe_setup = card.stripe_setup

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _paid_card_session(stripe_setup, api, client) -> tuple[PaymentSession, str]:
    session, started = _start_card_payment(api, client, "pm_card_visa")
    stripe_setup.v1.payment_intents.confirm(started["payment_intent"])
    return _wait_for(session, "paid"), started["payment_intent"]


def _deliver(client, event: dict):
    body = json.dumps(event)
    return client.post("/webhooks/stripe", body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))


def _event(event_type: str, obj: dict) -> dict:
    return {"id": f"evt_{event_type}_{obj['id']}_{time.monotonic_ns()}", "object": "event", "type": event_type,
            "livemode": False, "created": int(time.time()), "data": {"object": obj}}


def test_a_card_refund_goes_through_stripe_and_a_dashboard_refund_is_recorded_from_its_webhook(
        stripe_setup, api, client):
    session, intent = _paid_card_session(stripe_setup, api, client)

    # when the merchant refunds 10.00 through our API
    ours = api.post(f"/sessions/{session.pk}/refunds", {"amount": "10.00", "reason": "requested_by_customer"},
                    format="json").json()

    # then Stripe holds the refund, with our ids in its metadata, and it succeeded
    at_stripe = stripe_setup.v1.refunds.retrieve(ours["provider_reference"])
    assert (at_stripe["amount"], at_stripe["payment_intent"], at_stripe["metadata"]["refund_id"]) == (
        1000, intent, ours["id"])
    assert ours["status"] == "succeeded"

    # when someone refunds 5.00 more in Stripe's own dashboard, and Stripe sends charge.refunded
    stripe_setup.v1.refunds.create(params={"payment_intent": intent, "amount": 500})
    latest = stripe_setup.v1.payment_intents.retrieve(intent)["latest_charge"]
    charge = stripe_setup.v1.charges.retrieve(latest if isinstance(latest, str) else latest["id"]).to_dict()
    charge_refunded = _event("charge.refunded", charge)
    first = _deliver(client, charge_refunded)
    replay = _deliver(client, charge_refunded)

    # then that refund is recorded once, as made at the provider, and ours is not counted twice
    assert (first.json()["outcome"], replay.json()["outcome"]) == ("processed", "duplicate")
    refunds = {r.provider_reference: r for r in Refund.objects.filter(session=session)}
    assert len(refunds) == 2
    dashboard = next(r for r in refunds.values() if r.origin == Refund.Origin.PROVIDER)
    assert (str(dashboard.amount), dashboard.status, dashboard.actor) == ("5.000", "succeeded", "webhook:stripe")
    session.refresh_from_db()
    assert (str(session.amount_refunded), session.refund_status, session.status) == (
        "15.000", "partially_refunded", "paid")
    # and refund.updated for our own refund changes nothing more
    own = stripe_setup.v1.refunds.retrieve(ours["provider_reference"]).to_dict()
    assert _deliver(client, _event("refund.updated", own)).json()["outcome"] == "processed"
    assert Refund.objects.filter(session=session).count() == 2
    assert WebhookEvent.objects.filter(event_type="charge.refunded").count() == 1


def test_a_refund_stripe_refuses_fails_and_the_amount_can_be_refunded_again(stripe_setup, api, client, settings):
    session, intent = _paid_card_session(stripe_setup, api, client)
    # a payment Stripe does not know (a reference changed by hand): Stripe answers 404
    PaymentSession.objects.filter(pk=session.pk).update(provider_reference="pi_unknown0000000000")

    refused = api.post(f"/sessions/{session.pk}/refunds", {"reason": "other"}, format="json").json()

    assert refused["status"] == "failed" and refused["failure_reason"] in ("resource_missing", "provider_error")
    PaymentSession.objects.filter(pk=session.pk).update(provider_reference=intent)
    again = api.post(f"/sessions/{session.pk}/refunds", {"reason": "other"}, format="json").json()
    assert (again["status"], again["amount"]) == ("succeeded", "42.50")


def test_a_refund_left_pending_by_an_unreachable_stripe_fails_on_stripe_s_refund_failed(
        stripe_setup, api, client, settings):
    session, intent = _paid_card_session(stripe_setup, api, client)
    base = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    pending = api.post(f"/sessions/{session.pk}/refunds", {"amount": "2.50", "reason": "other"},
                       format="json").json()
    assert pending["status"] == "pending"
    # what is pending is held back from further refunds
    too_much = api.post(f"/sessions/{session.pk}/refunds", {"amount": "40.01", "reason": "other"}, format="json")
    assert too_much.json()["error"]["code"] == "refund_exceeds_available"

    # when Stripe reports that refund failed (it carries our id in its metadata)
    settings.STRIPE_API_BASE = base
    failed = {"id": "re_failed_1", "object": "refund", "amount": 250, "currency": "eur", "status": "failed",
              "failure_reason": "expired_or_canceled_card", "payment_intent": intent,
              "metadata": {"refund_id": pending["id"], "session_id": str(session.pk)}}
    assert _deliver(client, _event("refund.failed", failed)).json()["outcome"] == "processed"

    refund = api.get(f"/refunds/{pending['id']}").json()
    assert (refund["status"], refund["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert api.post(f"/sessions/{session.pk}/refunds", {"amount": "40.01", "reason": "other"},
                    format="json").json()["status"] == "succeeded"
