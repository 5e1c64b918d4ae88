"""A webhook is stored once and pays its session once, however many copies arrive together."""

import json
from decimal import Decimal

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.services import audit_verify
from sessions_app import lifecycle
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.services import session_create
from sessions_app.tests.conftest import stripe_event
from tests.threads import run_together

# Every test on both write paths (the one-statement fast path and the locked ORM path).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("write_path")]


def deliver_concurrently(bodies: list[str]) -> list[dict]:
    def deliver(i: int) -> dict:
        response = Client().post("/webhooks/stripe", bodies[i], content_type="application/json",
                                 HTTP_STRIPE_SIGNATURE=stripe_provider.sign(bodies[i]))
        assert response.status_code == 200, response.content
        return response.json()

    return run_together(len(bodies), deliver)


def paid_event(session: PaymentSession) -> str:
    return json.dumps(stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                                 amount=session.amount, currency=session.currency))


def test_twenty_copies_of_one_event_are_stored_once_and_pay_once(merchant):
    # given an open session and one signed event delivered 20 times at the same instant
    session = session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("10.00"))
    body = paid_event(session)

    results = deliver_concurrently([body] * 20)

    # then one delivery processed it, the others were told it was a duplicate
    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes == ["duplicate"] * 19 + ["processed"]
    assert WebhookEvent.objects.filter(session=session).count() == 1
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID
    assert AuditEvent.objects.filter(subject_id=str(session.pk), action="session.paid").count() == 1
    assert audit_verify() == []


def test_twenty_different_paid_events_for_one_session_make_one_transition(merchant):
    # given 20 distinct succeeded events for the same session, delivered together
    session = session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("10.00"))

    results = deliver_concurrently([paid_event(session) for _ in range(20)])

    # then the session was paid once; every other event was stored and ignored
    assert sorted(r["outcome"] for r in results) == ["ignored"] * 19 + ["processed"]
    assert WebhookEvent.objects.filter(session=session).count() == 20
    assert AuditEvent.objects.filter(subject_id=str(session.pk), action="session.paid").count() == 1
    assert audit_verify() == []


def test_an_unmatched_event_is_stored_once(client):
    body = json.dumps(stripe_provider.test_event(session_id="00000000-0000-0000-0000-000000000000",
                                                 event_type="payment_intent.succeeded", amount=Decimal("1.00"),
                                                 currency="EUR"))
    first = client.post("/webhooks/stripe", body, content_type="application/json",
                        HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    second = client.post("/webhooks/stripe", body, content_type="application/json",
                         HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))

    assert (first.json()["outcome"], second.json()["outcome"]) == ("unmatched", "duplicate")
    assert WebhookEvent.objects.filter(outcome="unmatched").count() == 1


def test_an_event_id_already_stored_for_another_session_moves_nothing(merchant):
    # given an event id stored for one session, and another open session
    first = session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("10.00"))
    second = session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("10.00"))
    event = stripe_provider.test_event(session_id=str(first.pk), event_type="payment_intent.succeeded",
                                       amount=first.amount, currency=first.currency)
    body = json.dumps(event)
    Client().post("/webhooks/stripe", body, content_type="application/json",
                  HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))

    # when an event with the same id claims to pay the second session (the one statement that
    # would move it finds the id taken and undoes itself)
    event["data"]["object"]["metadata"]["session_id"] = str(second.pk)
    replay = json.dumps(event)
    response = Client().post("/webhooks/stripe", replay, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=stripe_provider.sign(replay))

    # then it is a duplicate: the second session is still open, with no event and no audit link
    assert response.json()["outcome"] == "duplicate"
    assert PaymentSession.objects.get(pk=second.pk).status == Status.CREATED
    assert not WebhookEvent.objects.filter(session=second).exists()
    assert not AuditEvent.objects.filter(subject_id=str(second.pk), action="session.paid").exists()
    assert PaymentSession.objects.get(pk=first.pk).status == Status.PAID
    assert audit_verify() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write_path", ["locked"], indirect=True)
def test_an_event_our_handler_broke_on_is_kept_as_failed_and_the_providers_retry_applies_it(
        write_path, make_session, monkeypatch):
    # given a handler that breaks once on a verified payment event (the locked path)
    session = make_session()
    real_transition, calls = lifecycle._transition, []

    def breaks_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("handler bug")
        return real_transition(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "_transition", breaks_once)
    body = json.dumps(stripe_event(session))
    client = Client(raise_request_exception=False)

    # when the provider delivers it: a 5xx, and the event kept with its error, nothing moved
    first = client.post("/webhooks/stripe", body, content_type="application/json",
                        HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert first.status_code == 500
    stored = WebhookEvent.objects.get()
    assert (stored.outcome, stored.error) == ("failed", "RuntimeError: handler bug")
    assert PaymentSession.objects.get(pk=session.pk).status == Status.CREATED

    # and when the provider retries the same event, it is applied, once
    second = client.post("/webhooks/stripe", body, content_type="application/json",
                         HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert second.json()["outcome"] == "processed"
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID
    assert WebhookEvent.objects.get().outcome == "processed"
    assert AuditEvent.objects.filter(action="session.paid", subject_id=str(session.pk)).count() == 1
    third = client.post("/webhooks/stripe", body, content_type="application/json",
                        HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert third.json()["outcome"] == "duplicate"
