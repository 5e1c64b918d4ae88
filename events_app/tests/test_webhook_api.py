"""The endpoints and events API, secrets and their rotation, and where deliveries may go.

Deliveries here run in the test process (no broker: queued inline on commit) against a real
receiver on 127.0.0.1 that verifies signatures with the standardwebhooks library.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from events_app import delivery, destinations, fan_out, services
from events_app.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from invoices_app.tests.conftest import create_session
from keys_app.services import key_issue

pytestmark = pytest.mark.django_db(transaction=True)


def make_endpoint(api, url, types=("*",)):
    response = api.post("/webhook_endpoints", {"url": url, "event_types": list(types)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def live_api(merchant):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key_issue(account=merchant, mode="live").plaintext)
    return client


def test_create_shows_the_secret_once_and_stores_it_sealed(api, receiver):
    created = make_endpoint(api, receiver.url, ["session.paid", "invoice.issued"])
    assert created["secret"].startswith("whsec_") and created["event_types"] == ["invoice.issued", "session.paid"]
    stored = WebhookEndpoint.objects.get(pk=created["id"])
    assert created["secret"] not in stored.secret_sealed
    assert created["secret"][6:] not in str(list(AuditEvent.objects.values_list("after", "data")))
    listed = api.get("/webhook_endpoints").json()
    assert [e["id"] for e in listed["results"]] == [created["id"]] and "secret" not in listed["results"][0]
    assert "secret" not in api.get(f"/webhook_endpoints/{created['id']}").json()


def test_update_delete_and_bad_input(api, receiver, other_merchant):
    created = make_endpoint(api, receiver.url)
    changed = api.patch(f"/webhook_endpoints/{created['id']}", {"event_types": ["key.issued"], "enabled": False},
                        format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert changed.json()["event_types"] == ["key.issued"]
    bad = api.patch(f"/webhook_endpoints/{created['id']}", {"event_types": ["session.eaten"]}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "event_types_invalid"
    unknown = api.patch(f"/webhook_endpoints/{created['id']}", {"secret": "x"}, format="json")
    assert unknown.json()["error"]["code"] == "parameter_unknown"
    # another merchant's key sees nothing of it
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    assert other.get(f"/webhook_endpoints/{created['id']}").status_code == 404
    assert other.delete(f"/webhook_endpoints/{created['id']}").json()["error"]["code"] == "webhook_endpoint_not_found"
    assert api.delete(f"/webhook_endpoints/{created['id']}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["https://127.0.0.1/hooks", "https://169.254.169.254/latest/meta-data",
                                 "https://[::1]/hooks", "https://10.0.0.7/hooks", "https://localhost/hooks"])
def test_a_live_endpoint_to_loopback_private_or_metadata_is_refused(live_api, url):
    response = live_api.post("/webhook_endpoints", {"url": url, "event_types": ["*"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "url_forbidden_address", "field": "url",
                                        "message": response.json()["error"]["message"]}
    assert not WebhookEndpoint.objects.exists()


def test_a_live_endpoint_must_be_https(live_api):
    response = live_api.post("/webhook_endpoints", {"url": "http://example.com/h", "event_types": ["*"]},
                             format="json")
    assert response.json()["error"]["code"] == "url_not_https"


def test_a_test_endpoint_to_metadata_is_refused_even_with_loopback_allowed(api):
    response = api.post("/webhook_endpoints", {"url": "http://169.254.169.254/", "event_types": ["*"]},
                        format="json")
    assert response.json()["error"]["code"] == "url_forbidden_address"


def test_a_name_that_resolves_elsewhere_at_delivery_is_not_called(merchant, monkeypatch):
    # given a live endpoint whose name resolved to a public address when it was saved
    public = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]
    monkeypatch.setattr(destinations.socket, "getaddrinfo", lambda *a, **k: public)
    endpoint, _ = services.endpoint_create(account_id=merchant.pk, mode="live", url="https://hooks.example/x",
                                           event_types=["*"], actor="test")
    # when the name points at the metadata service by the time of delivery (DNS rebinding)
    metadata = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))]
    monkeypatch.setattr(destinations.socket, "getaddrinfo", lambda *a, **k: metadata)
    ping = services.endpoint_send_test(endpoint=endpoint, actor="test")

    # then the attempt is refused before any connection, and recorded
    attempt = DeliveryAttempt.objects.get(delivery=ping)
    assert attempt.status_code is None and "link-local or metadata" in attempt.error


def test_rotation_both_secrets_sign_during_the_overlap(api, receiver):
    created = make_endpoint(api, receiver.url)
    rotated = api.post(f"/webhook_endpoints/{created['id']}/rotate_secret")
    assert rotated.status_code == 200 and rotated.json()["secret"] != created["secret"]
    receiver.secrets = [created["secret"], rotated.json()["secret"]]

    # a ping (sent inline here, without a broker) carries both signatures; each verifies
    response = api.post(f"/webhook_endpoints/{created['id']}/test")
    assert response.status_code == 202 and response.json()["type"] == "ping"
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.verified_with == receiver.secrets
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.headers["webhook-id"] == response.json()["id"]

    # after the overlap only the new secret signs
    WebhookEndpoint.objects.filter(pk=created["id"]).update(previous_secret_expires_at=timezone.now())
    api.post(f"/webhook_endpoints/{created['id']}/test")
    assert receiver.received[1].verified_with == [rotated.json()["secret"]]


def test_disabling_skips_pending_deliveries(merchant, receiver, settings):
    settings.MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES = 1
    settings.MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS = 0
    receiver.then = 400
    endpoint, secret = services.endpoint_create(account_id=merchant.pk, mode="test", url=receiver.url,
                                                event_types=["*"], actor="test")
    receiver.secrets = [secret]
    first, second = (Event.objects.create(account=merchant, mode="test", type="session.created") for _ in range(2))
    fan_out.events_fan_out()
    one, two = (Delivery.objects.get(event=e) for e in (first, second))

    delivery.delivery_send(delivery_id=one.pk)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    two.refresh_from_db()
    assert (two.status, two.last_error) == (Delivery.Status.SKIPPED, "endpoint disabled")
    assert delivery.delivery_send(delivery_id=two.pk) is None and len(receiver.received) == 1

    # re-enabled, a redelivery goes out with the same webhook-id and says so in its attempt row
    services.endpoint_reenable(endpoint=endpoint, actor="test")
    receiver.then = 200
    services.delivery_redeliver(delivery=two, actor="test")
    attempt = DeliveryAttempt.objects.get(delivery=two)
    assert attempt.redelivery and attempt.succeeded
    assert receiver.received[-1].headers["webhook-id"] == second.pk


def test_the_endpoint_list_reads_the_last_deliveries_of_a_page_at_once(api, merchant):
    def add_endpoint():
        endpoint, _ = services.endpoint_create(account_id=merchant.pk, mode="test", url="http://127.0.0.1:9/hook",
                                               event_types=["*"], actor="test")
        for status, attempts, code in ((Delivery.Status.FAILED, 3, 500), (Delivery.Status.SUCCEEDED, 1, 200),
                                       (Delivery.Status.PENDING, 0, None)):
            event = Event.objects.create(account=merchant, mode="test", type="session.created")
            Delivery.objects.create(endpoint=endpoint, event=event, status=status, attempts=attempts,
                                    last_status_code=code)

    add_endpoint()
    api.get("/webhook_endpoints")  # the key and anything else cached on a first request
    with CaptureQueriesContext(connection) as one:
        assert len(api.get("/webhook_endpoints").json()["results"]) == 1
    for _ in range(4):
        add_endpoint()
    with CaptureQueriesContext(connection) as five:
        listed = api.get("/webhook_endpoints").json()["results"]
    assert len(listed) == 5 and len(five) <= len(one)
    # the newest delivery with an attempt, as the endpoint itself shows it
    assert {e["last_delivery"]["status"] for e in listed} == {"succeeded"}
    assert all(e["last_delivery"] == api.get(f"/webhook_endpoints/{e['id']}").json()["last_delivery"] for e in listed)


def test_events_api_lists_filters_and_pages(api, merchant, live_api):
    sessions = [create_session(merchant) for _ in range(3)]
    listed = api.get("/events", {"type": "session.created", "limit": 2}).json()
    assert [e["object_id"] for e in listed["results"]] == [str(s.pk) for s in sessions[::-1][:2]]
    assert listed["next"]
    rest = api.get(listed["next"]).json()
    assert [e["object_id"] for e in rest["results"]] == [str(sessions[0].pk)]
    one = api.get(f"/events/{listed['results'][0]['id']}").json()
    assert one["data"]["status"] == "created" and one["data"]["amount"] == "99.99"
    later = timezone.now() + timedelta(minutes=1)
    assert api.get("/events", {"created_gte": later.isoformat()}).json()["results"] == []
    assert api.get("/events", {"type": "nope"}).json()["error"]["code"] == "type_invalid"
    assert api.get("/events", {"created_gte": "yesterday"}).json()["error"]["code"] == "created_gte_invalid"
    # the live key sees live events only
    assert live_api.get("/events").json()["results"] == []
    assert live_api.get(f"/events/{one['id']}").status_code == 404


@pytest.mark.parametrize(("query", "code"), [
    ({"limit": "null"}, "limit_invalid"), ({"limit": "0"}, "limit_invalid"), ({"limit": "101"}, "limit_invalid"),
    ({"type": ""}, "type_invalid"), ({"created_gte": ""}, "created_gte_invalid"),
    # RFC 3339 only, as the schema's date-time: no space for the T, no missing offset, no basic format
    ({"created_gte": "2026-01-31 12:00:00+00:00"}, "created_gte_invalid"),
    ({"created_lt": "2026-01-31T12:00:00"}, "created_lt_invalid"),
    ({"created_lt": "20260131T120000Z"}, "created_lt_invalid"),
    ({"created_lt": "2024-01-01T12:99:00Z"}, "created_lt_invalid"),
])
def test_an_events_query_the_schema_refuses_is_a_400(api, query, code):
    response = api.get("/events", query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_times_at_the_edges_of_the_calendar_bound_nothing(api, merchant):
    # given an event, and bounds whose UTC instant falls outside what a datetime holds
    create_session(merchant)
    # when the list is asked for everything from year 1 (+05:00) to year 9999 (-05:00)
    listed = api.get("/events", {"created_gte": "0001-01-01T00:00:00+05:00",
                                 "created_lt": "9999-12-31T23:59:59-05:00", "type": "session.created"})
    # then it is the whole list, not a 500 or a 400
    assert listed.status_code == 200
    assert len(listed.json()["results"]) == 1
    lowercase = api.get("/events", {"created_gte": "2000-01-01t00:00:00.5z"})
    assert lowercase.status_code == 200 and len(lowercase.json()["results"]) == 1


def test_an_endpoint_subscribes_to_refund_and_payment_link_events(api, receiver):
    created = make_endpoint(api, receiver.url, ["refund.succeeded", "payment_link.created"])
    assert created["event_types"] == ["payment_link.created", "refund.succeeded"]
    response = api.patch(f"/webhook_endpoints/{created['id']}", {"enabled": "true"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "enabled"
    response = api.patch(f"/webhook_endpoints/{created['id']}", {"secret": "whsec_x"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "parameter_unknown"


def test_events_are_purged_after_the_retention(merchant):
    old = Event.objects.create(account=merchant, mode="test", type="session.created",
                               created_at=timezone.now() - timedelta(days=31))
    new = Event.objects.create(account=merchant, mode="test", type="session.created")
    assert services.events_purge() == 1
    assert list(Event.objects.values_list("pk", flat=True)) == [new.pk] and old.pk != new.pk


def test_the_openapi_schema_covers_events_and_endpoints(anon):
    paths = anon.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in ("/events", "/events/{event_id}", "/webhook_endpoints", "/webhook_endpoints/{endpoint_id}",
                 "/webhook_endpoints/{endpoint_id}/rotate_secret", "/webhook_endpoints/{endpoint_id}/test"):
        assert path in paths, path
    assert set(paths["/webhook_endpoints/{endpoint_id}"]) >= {"get", "patch", "delete"}
