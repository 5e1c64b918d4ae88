"""Webhooks in the dashboard: each merchant sees its own endpoints and delivery log, and can
redeliver (same webhook-id, marked as a redelivery), send a test event and re-enable."""

from __future__ import annotations

import pytest
from django.test import Client

from events_app import delivery, fan_out, services
from events_app.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from keys_app.services import merchant_login_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def merchant_client(merchant):
    client = Client()
    client.force_login(merchant_login_create(account=merchant).user)
    return client


def failed_delivery(merchant, receiver):
    endpoint, secret = services.endpoint_create(account_id=merchant.pk, mode="test", url=receiver.url,
                                                event_types=["*"], actor="test")
    receiver.secrets = [secret]
    event = Event.objects.create(account=merchant, mode="test", type="session.paid", data={"id": "s"})
    fan_out.events_fan_out()
    receiver.then = 400
    one = Delivery.objects.get(event=event)
    delivery.delivery_send(delivery_id=one.pk)
    one.refresh_from_db()
    return endpoint, one


def test_the_delivery_log_is_the_merchants_own_and_filters_by_answer_and_type(merchant, other_merchant,
                                                                             merchant_client, receiver):
    endpoint, mine = failed_delivery(merchant, receiver)
    _, theirs = failed_delivery(other_merchant, receiver)
    page = merchant_client.get("/admin/events_app/delivery/", {"answer": "4xx", "event_type": "session.paid"})
    assert page.status_code == 200
    body = page.content.decode()
    assert mine.event_id in body and theirs.event_id not in body
    assert mine.event_id not in merchant_client.get("/admin/events_app/delivery/", {"answer": "2xx"}).content.decode()
    assert merchant_client.get(f"/admin/events_app/delivery/{theirs.pk}/change/").status_code == 404
    detail = merchant_client.get(f"/admin/events_app/delivery/{mine.pk}/change/").content.decode()
    assert "answered 400" in detail  # the attempt row with the start of the answer
    endpoints = merchant_client.get("/admin/events_app/webhookendpoint/").content.decode()
    assert endpoint.pk in endpoints and "failed (400)" in endpoints
    change = merchant_client.get(f"/admin/events_app/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.pk in change and endpoint.secret_sealed not in change and "whsec_" not in change


def test_redeliver_send_test_and_reenable_actions(merchant, merchant_client, receiver):
    endpoint, one = failed_delivery(merchant, receiver)
    receiver.then = 200
    response = merchant_client.post("/admin/events_app/delivery/", {"action": "redeliver",
                                                                    "_selected_action": [one.pk]})
    assert response.status_code == 302
    attempt = DeliveryAttempt.objects.filter(delivery=one).order_by("-started_at").first()
    assert attempt.redelivery and attempt.succeeded
    assert receiver.received[-1].headers["webhook-id"] == one.event_id
    assert receiver.received[-1].verified_with == receiver.secrets

    merchant_client.post("/admin/events_app/webhookendpoint/", {"action": "send_test_event",
                                                                "_selected_action": [endpoint.pk]})
    assert receiver.received[-1].headers["webhook-id"].startswith("evt_")
    assert b'"type":"ping"' in receiver.received[-1].body

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, consecutive_failures=10)
    merchant_client.post("/admin/events_app/webhookendpoint/", {"action": "reenable",
                                                                "_selected_action": [endpoint.pk]})
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.consecutive_failures == 0
