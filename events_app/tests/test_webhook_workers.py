"""Merchant webhooks end to end: real Celery workers on the real Redis broker, the dispatcher in the
worker, and a receiver on 127.0.0.1 that verifies every signature with the standardwebhooks library."""

from __future__ import annotations

import json

import pytest

from events_app.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from events_app.tests.receiver import Receiver
from invoices_app.tests.conftest import create_session, free_port, mark_paid, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Workers that look for work often and hand a stuck delivery on soon.
FAST = {"MERCHANT_WEBHOOK_DISPATCH_INTERVAL_MS": "50", "MERCHANT_WEBHOOK_REQUEUE_SECONDS": "3"}


def endpoint_for(api, url: str, types: list[str]) -> dict:
    response = api.post("/webhook_endpoints", {"url": url, "event_types": types}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def delivery_done(**filters) -> Delivery | None:
    return Delivery.objects.filter(**filters).exclude(status=Delivery.Status.PENDING).first()


def test_a_paid_session_delivers_one_session_paid_whose_signature_verifies(merchant, api, workers, receiver):
    # given an endpoint that wants session.paid, and a worker
    endpoint = endpoint_for(api, receiver.url, ["session.paid"])
    receiver.secrets = [endpoint["secret"]]
    workers(**FAST)

    # when a session is created and paid (the one-statement paths on PostgreSQL)
    session = create_session(merchant)
    mark_paid(session)

    # then one delivery succeeds, signed with the endpoint's secret, webhook-id = the event id
    delivery = wait_until(lambda: delivery_done(endpoint_id=endpoint["id"]), message="the delivery")
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.verified_with == [endpoint["secret"]]
    body = json.loads(got.body)
    event = Event.objects.get(type="session.paid")
    assert got.headers["webhook-id"] == body["id"] == event.pk == delivery.event_id
    assert body["type"] == "session.paid" and body["data"]["id"] == str(session.pk)
    assert body["data"]["status"] == "paid" and body["data"]["amount"] == "99.99" and body["livemode"] is False
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert (attempt.status_code, attempt.succeeded, attempt.response_body) == (200, True, "answered 200")
    # the created event was written too, but this endpoint did not ask for it
    assert Event.objects.filter(type="session.created", object_id=str(session.pk)).count() == 1
    assert Delivery.objects.count() == 1


def test_a_receiver_down_then_up_gets_the_event_and_the_attempts_show_it(merchant, api, workers):
    # given an endpoint on a port where nothing listens yet, retried every second
    port = free_port()
    endpoint = endpoint_for(api, f"http://127.0.0.1:{port}/hooks", ["session.created"])
    workers(**FAST, MERCHANT_WEBHOOK_RETRY_SCHEDULE="1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1")
    session = create_session(merchant)
    wait_until(lambda: DeliveryAttempt.objects.count() >= 2, message="two failed attempts")

    # when the receiver comes up
    receiver = Receiver(secrets=[endpoint["secret"]]).start(port)
    try:
        delivery = wait_until(lambda: delivery_done(endpoint_id=endpoint["id"]), message="the delivery")
    finally:
        receiver.stop()

    # then it was delivered, once, and the attempt rows show the refused connections before
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert len(receiver.received) == 1 and receiver.received[0].verified_with == [endpoint["secret"]]
    assert json.loads(receiver.received[0].body)["data"]["id"] == str(session.pk)
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at"))
    assert [a.status_code for a in attempts[:-1]] == [None] * (len(attempts) - 1)
    assert all("refused" in a.error.lower() for a in attempts[:-1]), [a.error for a in attempts]
    assert attempts[-1].status_code == 200 and attempts[-1].succeeded
    assert delivery.attempts == len(attempts) >= 3


def test_a_500_then_a_200_is_retried_on_schedule(merchant, api, workers, receiver):
    endpoint = endpoint_for(api, receiver.url, ["session.created"])
    receiver.secrets, receiver.script = [endpoint["secret"]], [500]
    workers(**FAST, MERCHANT_WEBHOOK_RETRY_SCHEDULE="2,60")

    create_session(merchant)

    delivery = wait_until(lambda: delivery_done(endpoint_id=endpoint["id"]), message="the delivery")
    assert delivery.status == Delivery.Status.SUCCEEDED
    first, second = DeliveryAttempt.objects.filter(delivery=delivery).order_by("started_at")
    assert (first.status_code, second.status_code) == (500, 200)
    # the schedule's 2 s, less at most 10% jitter
    assert (second.started_at - first.started_at).total_seconds() >= 1.8
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.event_id] * 2
    assert all(r.verified_with for r in receiver.received)


def test_a_400_is_not_retried(merchant, api, workers, receiver):
    endpoint = endpoint_for(api, receiver.url, ["session.created"])
    receiver.secrets, receiver.then = [endpoint["secret"]], 400
    workers(**FAST, MERCHANT_WEBHOOK_RETRY_SCHEDULE="1,1,1")

    create_session(merchant)

    delivery = wait_until(lambda: delivery_done(endpoint_id=endpoint["id"]), message="the delivery")
    # failed for good at the first answer: no longer pending, so the dispatcher never takes it again
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempts == 1 and delivery.last_status_code == 400
    assert len(receiver.received) == 1
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).consecutive_failures == 1


def test_an_endpoint_is_disabled_after_n_failed_events_and_the_merchant_is_told(merchant, api, workers, receiver,
                                                                              smtp_server):
    # given an endpoint that always answers 503, no retries, disabled after 3 failed events
    endpoint = endpoint_for(api, receiver.url, ["session.created"])
    receiver.secrets, receiver.then = [endpoint["secret"]], 503
    workers(**FAST, MERCHANT_WEBHOOK_RETRY_SCHEDULE="", MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES="3",
            MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS="0")

    # when three events fail, one after the other
    for count in (1, 2, 3):
        create_session(merchant)
        wait_until(lambda count=count: Delivery.objects.filter(status=Delivery.Status.FAILED).count() == count,
                   message=f"failed event {count}")

    # then the endpoint is disabled, the merchant was warned at the 2nd and told at the 3rd
    stored = WebhookEndpoint.objects.get(pk=endpoint["id"])
    assert not stored.enabled and stored.consecutive_failures == 3 and "3 events" in stored.disabled_reason
    wait_until(lambda: len(smtp_server.to("billing@acme.test")) == 2, message="two emails to the merchant")
    subjects = [m["Subject"] for m in smtp_server.to("billing@acme.test")]
    assert subjects == [f"Webhook endpoint failing: {receiver.url}", f"Webhook endpoint disabled: {receiver.url}"]
    assert api.get(f"/webhook_endpoints/{endpoint['id']}").json()["enabled"] is False

    # and a later event is not sent to it
    create_session(merchant)
    wait_until(lambda: not Event.objects.filter(fanned_out=False).exists(), message="the fan-out")
    assert Delivery.objects.count() == 3 and len(receiver.received) == 3


def test_a_worker_killed_mid_delivery_leaves_it_to_another_with_the_same_webhook_id(merchant, api, workers,
                                                                                     receiver):
    # given a worker whose request the receiver holds unanswered
    endpoint = endpoint_for(api, receiver.url, ["session.created"])
    receiver.secrets, receiver.hold_next = [endpoint["secret"]], True
    first = workers(**FAST)
    create_session(merchant)
    assert receiver.held.wait(30), "the first request never arrived"

    # when that worker is killed with SIGKILL mid-request, and another starts
    first.kill()
    workers(**FAST)

    # then the other delivers it, with the same webhook-id, and one successful attempt is recorded
    delivery = wait_until(lambda: delivery_done(endpoint_id=endpoint["id"]), timeout=60, message="the delivery")
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.event_id]
    assert receiver.received[0].verified_with == [endpoint["secret"]]
    attempts = DeliveryAttempt.objects.filter(delivery=delivery)
    assert attempts.filter(succeeded=True).count() == 1 and attempts.count() == 1
