"""The merchant's session API: create, list, read, expire, and the public status; each merchant sees only its own."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from sessions_app.models import PaymentSession, Status

pytestmark = pytest.mark.django_db


def test_it_creates_a_session_and_answers_with_its_checkout_url(api, merchant, settings):
    # when the merchant creates a session with the seed's fields
    response = api.post("/create_session", {"amount": 99.99, "mode": "test", "description": "Pro plan"}, format="json")

    # then it answers 201 with the session, and `url` equals `checkout_url` (the seed's JavaScript reads data.url)
    assert response.status_code == 201, response.content
    body = response.json()
    session = PaymentSession.objects.get(pk=body["session_id"])
    assert body["checkout_url"] == f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}"
    assert body["url"] == body["checkout_url"]
    assert (body["status"], body["amount"], body["currency"], body["mode"]) == ("created", "99.99", "EUR", "test")
    assert body["expires_at"].endswith("Z")
    assert session.account == merchant
    assert str(session.amount) == "99.990"
    # the default lifetime is 24 h
    assert timedelta(hours=23, minutes=59) < session.expires_at - session.created_at <= timedelta(hours=24)
    assert AuditEvent.objects.filter(action="session.created", subject_id=str(session.pk)).count() == 1


def test_it_keeps_an_amount_exact_and_shows_it_in_the_currencys_decimals(api):
    response = api.post("/create_session", {"amount": "1500", "currency": "jpy"}, format="json")

    assert response.status_code == 201
    assert (response.json()["amount"], response.json()["amount_minor"], response.json()["currency"]) == ("1500", 1500, "JPY")


def test_a_seed_browser_snippet_without_content_type_creates_a_session(client, merchant):
    # given the seed's fetch(): a JSON string body and no Content-Type (the browser sends text/plain)
    body = '{"amount": 99.99, "mode": "test"}'

    # when it is posted
    response = client.post("/create_session", body, content_type="text/plain;charset=UTF-8",
                           HTTP_X_API_KEY=merchant.plaintext_key)

    # then it works like a JSON request
    assert response.status_code == 201, response.content
    assert response.json()["url"]


def test_a_request_with_no_content_type_at_all_creates_a_session(client, merchant):
    response = client.generic("POST", "/create_session", '{"amount": "5.00"}', content_type="",
                              HTTP_X_API_KEY=merchant.plaintext_key)

    assert response.status_code == 201, response.content


def test_a_curl_style_form_content_type_with_a_json_body_creates_a_session(client, merchant):
    # curl -d '{...}' sends application/x-www-form-urlencoded
    response = client.post("/create_session", '{"amount": "5.00"}', content_type="application/x-www-form-urlencoded",
                           HTTP_X_API_KEY=merchant.plaintext_key)

    assert response.status_code == 201, response.content


def test_it_lists_only_the_merchants_own_sessions_newest_first(api, make_session, other_merchant):
    # given three sessions of the merchant, created one after the other, and one of another merchant
    now = timezone.now()
    mine = [make_session(description=f"mine {i}") for i in range(3)]
    for age, session in enumerate(reversed(mine)):
        PaymentSession.objects.filter(pk=session.pk).update(created_at=now - timedelta(minutes=age))
    make_session(account=other_merchant, description="theirs")

    # when the merchant lists its sessions
    response = api.get("/sessions")

    # then it sees its own three, newest first
    assert response.status_code == 200
    assert [row["description"] for row in response.json()["results"]] == ["mine 2", "mine 1", "mine 0"]


def test_it_filters_the_list_by_status(api, make_session):
    open_session = make_session()
    expired = make_session()
    api.post(f"/sessions/{expired.pk}/expire")

    failed = api.get("/sessions?status=failed").json()["results"]
    created = api.get("/sessions?status=created").json()["results"]

    assert [row["session_id"] for row in failed] == [str(expired.pk)]
    assert [row["session_id"] for row in created] == [str(open_session.pk)]


@pytest.mark.parametrize("query", ["status=refunded", "status="])
def test_it_rejects_an_unknown_status_filter(api, query):
    # an empty status is not a status either (the schema's enum): a 400, not the unfiltered list
    response = api.get(f"/sessions?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "status_invalid"


def test_it_pages_through_the_list_without_repeating_or_skipping(api, make_session):
    # given five sessions
    created = {str(make_session().pk) for _ in range(5)}

    # when the merchant reads them two at a time, following `next`
    seen, url, pages = [], "/sessions?limit=2", 0
    while url:
        page = api.get(url).json()
        seen += [row["session_id"] for row in page["results"]]
        url, pages = page["next"], pages + 1
        assert pages <= 5

    # then every session appears exactly once, over three pages
    assert sorted(seen) == sorted(created)
    assert pages == 3


def test_it_shows_a_merchant_its_own_session(api, make_session):
    session = make_session(customer_email="buyer@example.com")

    response = api.get(f"/sessions/{session.pk}")

    assert response.status_code == 200
    assert response.json()["session_id"] == str(session.pk)
    assert response.json()["customer_email"] == "buyer@example.com"


@pytest.mark.parametrize(("method", "path"), [("get", "/sessions/{id}"), ("post", "/sessions/{id}/expire")])
def test_another_merchants_session_is_a_404(api, make_session, other_merchant, method, path):
    # given a session of another merchant
    theirs = make_session(account=other_merchant)

    # when the merchant reads or expires it
    response = getattr(api, method)(path.format(id=theirs.pk))

    # then it does not exist for them, and it is untouched
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"
    assert PaymentSession.objects.get(pk=theirs.pk).status == Status.CREATED


@pytest.mark.parametrize("session_id", ["not-a-uuid", "0b6c1f4e-8a59-4e47-9a51-3f1d2c7e9a10"])
def test_an_unknown_or_malformed_session_id_is_a_404(api, session_id):
    assert api.get(f"/sessions/{session_id}").status_code == 404
    assert api.post(f"/sessions/{session_id}/expire").status_code == 404


def test_expiring_an_open_session_fails_it_with_reason_expired(api, make_session):
    session = make_session()

    response = api.post(f"/sessions/{session.pk}/expire")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["failure_reason"]) == ("failed", "expired")
    assert AuditEvent.objects.filter(action="session.failed", subject_id=str(session.pk)).count() == 1


def test_expiring_a_closed_session_is_a_409(api, make_session):
    session = make_session()
    api.post(f"/sessions/{session.pk}/expire")

    response = api.post(f"/sessions/{session.pk}/expire")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_not_open"


def test_anyone_can_poll_the_status_without_customer_data(anon, make_session, deliver):
    from sessions_app.tests.conftest import stripe_event

    session = make_session(customer_email="buyer@example.com")
    assert anon.get(f"/session/{session.pk}/status").json()["status"] == "created"

    deliver(stripe_event(session))
    body = anon.get(f"/session/{session.pk}/status").json()

    assert body["status"] == "paid"
    assert body["paid_at"].endswith("Z")
    assert "buyer@example.com" not in str(body)
    assert set(body) == {"id", "session_id", "status", "paid_at", "refund_status"}


def test_the_status_of_an_unknown_session_is_a_404(anon):
    response = anon.get(f"/session/{uuid.uuid4()}/status")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/create_session"), ("get", "/sessions"), ("get", "/sessions/x"), ("post", "/sessions/x/expire"),
])
def test_the_merchant_api_needs_a_key(anon, method, path):
    response = getattr(anon, method)(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_missing"


def test_overdue_open_sessions_are_expired_by_the_sweep(make_session):
    from sessions_app.services import session_expire_overdue

    overdue, fresh = make_session(), make_session()
    PaymentSession.objects.filter(pk=overdue.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert session_expire_overdue() == 1

    assert PaymentSession.objects.get(pk=overdue.pk).failure_reason == "expired"
    assert PaymentSession.objects.get(pk=fresh.pk).status == Status.CREATED


def test_a_wrong_method_is_a_405_in_the_error_shape(api):
    response = api.get("/create_session")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_unknown_url_is_a_404_in_the_error_shape(api):
    response = api.get("/no/such/endpoint")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_bad_list_cursor_is_a_4xx_in_the_error_shape(api):
    response = api.get("/sessions?cursor=garbage")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "cursor_invalid"


def test_the_prepared_session_read_gives_what_the_orm_gives(merchant):
    from decimal import Decimal

    from sessions_app.selectors import session_get
    from sessions_app.services import session_create

    created = session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("12.50"), currency="EUR",
                             metadata={"order": "A-1", "n": "2"}, customer_email="b@example.com")
    read, orm = session_get(session_id=created.pk), PaymentSession.objects.get(pk=created.pk)
    fields = [f.attname for f in PaymentSession._meta.concrete_fields]
    assert [getattr(read, f) for f in fields] == [getattr(orm, f) for f in fields]
    assert read.metadata == {"order": "A-1", "n": "2"} and not read._state.adding
    assert session_get(session_id=uuid.uuid4()) is None
