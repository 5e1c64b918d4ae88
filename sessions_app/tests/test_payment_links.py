"""Payment links: the API, GET /pay/{slug}, publishable-key sessions, events and the dashboard."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from core import errors
from events_app.models import Event
from keys_app.publishable import publishable_key_ensure
from keys_app.services import key_issue
from sessions_app.links.services import link_create, link_session_start
from sessions_app.models import PaymentLink, PaymentSession

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.2:8123"


def create_link(api, **body):
    response = api.post("/payment_links", {"amount": "49.00", "currency": "EUR", "description": "API access",
                                            **body}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def pk_client(merchant):
    merchant.allowed_origins = [ORIGIN]
    merchant.save(update_fields=["allowed_origins"])
    key = publishable_key_ensure(account=merchant, mode="test").key
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


# ---------------------------------------------------------------- the API


def test_a_link_is_created_read_listed_and_its_url_points_at_pay(api, settings):
    settings.PUBLIC_BASE_URL = "https://pay.example"
    link = create_link(api, success_url="https://shop.example/thanks", metadata={"plan": "pro"})
    assert link["id"].startswith("plink_") and link["active"] is True
    assert link["url"] == f"https://pay.example/pay/{link['slug']}"
    assert (link["amount"], link["currency"], link["custom_amount"]) == ("49.00", "EUR", None)
    assert api.get(f"/payment_links/{link['id']}").json() == link
    listed = api.get("/payment_links").json()
    assert [item["id"] for item in listed["results"]] == [link["id"]]
    assert api.get("/payment_links?active=false").json()["results"] == []


def test_a_custom_amount_link_keeps_its_range(api):
    link = create_link(api, amount=None, custom_amount={"min": "5", "max": "500", "preset": "25"})
    assert link["amount"] is None
    assert link["custom_amount"] == {"min": "5.00", "max": "500.00", "preset": "25.00"}


@pytest.mark.parametrize(("body", "code"), [
    ({"amount": "10", "custom_amount": {"min": "1", "max": "5"}}, "amount_required"),
    ({"amount": None, "custom_amount": {"min": "10", "max": "5"}}, "custom_amount_invalid"),
    ({"amount": None, "custom_amount": {"min": "1", "max": "5", "preset": "9"}}, "custom_amount_invalid"),
    ({"amount": "1.234"}, "amount_precision"),
    ({"price": "1"}, "parameter_unknown"),
    ({"providers": ["onecom"]}, "provider_not_enabled"),
])
def test_a_bad_link_is_refused_with_its_code(api, body, code):
    body = {"currency": "EUR", "amount": "10", **body}
    if body.get("amount") is None:
        body.pop("amount")
    response = api.post("/payment_links", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_the_price_never_changes_but_description_and_active_do(api):
    link = create_link(api)
    for field, value in (("amount", "1.00"), ("currency", "USD"), ("custom_amount", {"min": "1", "max": "2"})):
        response = api.patch(f"/payment_links/{link['id']}", {field: value}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "price_immutable"
    response = api.patch(f"/payment_links/{link['id']}", {"description": "Pro plan", "active": False}, format="json")
    assert response.status_code == 200
    assert (response.json()["description"], response.json()["active"], response.json()["amount"]) == (
        "Pro plan", False, "49.00")


@pytest.mark.parametrize("limit", ["null", "0", "101", "1024", "2.5", "true"])
def test_a_list_page_size_outside_1_to_100_is_refused(api, limit):
    # given a limit the schema refuses (DRF alone would fall back to 20, or clamp to 100)
    response = api.get("/payment_links", {"limit": limit})
    # then it is refused, naming the field
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("limit_invalid", "limit")


@pytest.mark.parametrize("active", ["true", 1, "yes", None])
def test_active_is_a_json_boolean_only(api, active):
    link = create_link(api)
    response = api.patch(f"/payment_links/{link['id']}", {"active": active}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "active"
    assert api.get(f"/payment_links/{link['id']}").json()["active"] is True


def test_the_schema_says_what_a_link_body_may_hold(anon):
    schemas = anon.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]
    create, update = schemas["PaymentLinkCreateRequest"], schemas["PatchedPaymentLinkUpdateRequest"]
    # unknown fields are `400 parameter_unknown`, as above
    assert create["additionalProperties"] is False and update["additionalProperties"] is False
    props = create["properties"]
    assert props["providers"]["minItems"] == 1 and "EUR" in props["currency"]["enum"]
    assert props["metadata"]["type"] == "object"


def test_links_are_the_merchants_own(api, other_merchant):
    link = create_link(api)
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    assert other.get(f"/payment_links/{link['id']}").status_code == 404
    assert other.patch(f"/payment_links/{link['id']}", {"active": False}, format="json").status_code == 404
    assert other.get("/payment_links").json()["results"] == []


def test_created_and_updated_events_are_recorded_with_the_change(api, merchant):
    link = create_link(api)
    api.patch(f"/payment_links/{link['id']}", {"active": False}, format="json")
    events = list(Event.objects.filter(account=merchant, object_id=link["id"]).order_by("created_at"))
    assert [e.type for e in events] == ["payment_link.created", "payment_link.updated"]
    assert events[0].data["amount"] == "49.00" and events[0].mode == "test"
    # and the events API lists them under their own type
    listed = api.get("/events", {"type": "payment_link.updated"}).json()["results"]
    assert [(e["type"], e["object_id"]) for e in listed] == [("payment_link.updated", link["id"])]
    assert events[1].data["active"] is False
    assert events[1].data["previous_attributes"] == {"active": True}


def test_an_update_that_changes_nothing_records_no_event(api, merchant):
    link = create_link(api)
    api.patch(f"/payment_links/{link['id']}", {"active": True}, format="json")
    assert Event.objects.filter(object_id=link["id"], type="payment_link.updated").count() == 0


# ---------------------------------------------------------------- GET /pay/{slug}


def test_pay_starts_a_session_at_the_links_price_and_redirects_to_checkout(api, client):
    link = create_link(api, success_url="https://shop.example/thanks", metadata={"plan": "pro"})
    response = client.get(f"/pay/{link['slug']}?prefilled_email=buyer@example.test&client_reference_id=order-7"
                          "&locale=de&amount=1&description=free")
    assert response.status_code == 303
    assert response["Cache-Control"] == "no-store"
    session = PaymentSession.objects.get()
    assert response["Location"] == f"/checkout?session={session.pk}&locale=de"
    assert (session.amount, session.currency, session.payment_link_id) == (Decimal("49.000"), "EUR", link["id"])
    assert (session.customer_email, session.client_reference_id) == ("buyer@example.test", "order-7")
    assert (session.description, session.metadata, session.success_url) == (
        "API access", {"plan": "pro"}, "https://shop.example/thanks")
    assert client.get(response["Location"]).status_code == 200
    assert api.get(f"/sessions/{session.pk}").json()["payment_link"] == link["id"]


def test_pay_ignores_a_bad_email_and_refuses_an_overlong_reference(api, client):
    link = create_link(api)
    assert client.get(f"/pay/{link['slug']}?prefilled_email=not-an-email").status_code == 303
    assert PaymentSession.objects.get().customer_email == ""
    response = client.get(f"/pay/{link['slug']}?client_reference_id=" + "x" * 201)
    assert response.status_code == 400
    assert b"client_reference_id" in response.content
    assert PaymentSession.objects.count() == 1


def test_a_custom_link_takes_an_amount_within_its_range_only(api, client):
    link = create_link(api, amount=None, custom_amount={"min": "5", "max": "50", "preset": "20"})
    assert client.get(f"/pay/{link['slug']}?amount=12.50").status_code == 303
    assert client.get(f"/pay/{link['slug']}").status_code == 303
    assert sorted(PaymentSession.objects.values_list("amount", flat=True)) == [Decimal("12.5"), Decimal("20")]
    for amount in ("4.99", "50.01", "abc", "NaN", "sNaN", "12.345", "1e999999", "-1e999999", "1e-999999"):
        response = client.get(f"/pay/{link['slug']}?amount={amount}")
        assert response.status_code == 400, amount
    assert b"between 5.000 and 50.000" in client.get(f"/pay/{link['slug']}?amount=51").content
    assert PaymentSession.objects.count() == 2


def test_an_inactive_link_shows_its_page_not_a_404(api, client):
    link = create_link(api, description="Pro plan")
    api.patch(f"/payment_links/{link['id']}", {"active": False}, format="json")
    response = client.get(f"/pay/{link['slug']}")
    assert response.status_code == 410
    page = response.content.decode()
    assert "This payment link is no longer active" in page and "Acme GmbH" in page and "Pro plan" in page
    assert PaymentSession.objects.count() == 0
    assert client.get("/pay/nosuchslug").status_code == 404


def test_pay_is_rate_limited_per_ip_with_retry_after(api, client, rates):
    rates(pay_link_ip="3/min", pay_link="1000/min")
    link = create_link(api)
    assert [client.get(f"/pay/{link['slug']}").status_code for _ in range(3)] == [303, 303, 303]
    refused = client.get(f"/pay/{link['slug']}")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 61
    # another address still gets through
    assert client.get(f"/pay/{link['slug']}", REMOTE_ADDR="127.0.0.9").status_code == 303
    assert PaymentSession.objects.count() == 4


def test_pay_is_rate_limited_per_link_whatever_the_address(api, client, rates):
    rates(pay_link_ip="1000/min", pay_link="2/min")
    link, other = create_link(api), create_link(api)
    codes = [client.get(f"/pay/{link['slug']}", REMOTE_ADDR=f"127.0.0.{n}").status_code for n in range(1, 5)]
    assert codes == [303, 303, 429, 429]
    assert client.get(f"/pay/{other['slug']}").status_code == 303


def test_a_hundred_visits_make_a_hundred_sessions_at_the_links_price(api, client, rates):
    rates(pay_link_ip="1000/min", pay_link="1000/min")
    link = create_link(api, amount="19.99")
    for _ in range(100):
        assert client.get(f"/pay/{link['slug']}").status_code == 303
    sessions = PaymentSession.objects.filter(payment_link_id=link["id"])
    assert sessions.count() == 100
    assert set(sessions.values_list("amount", "currency", "mode")) == {(Decimal("19.990"), "EUR", "test")}
    assert len(set(sessions.values_list("pk", flat=True))) == 100


# ---------------------------------------------------------------- POST /create_session with a pk_ key


def test_a_publishable_key_starts_a_session_from_a_link(api, pk_client, settings):
    settings.PUBLIC_BASE_URL = "https://pay.example"
    link = create_link(api)
    response = pk_client.post("/create_session", {"payment_link": link["id"], "customer_email": "b@example.test",
                                                  "client_reference_id": "cart-1"}, format="json",
                              HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 201, response.json()
    data = response.json()
    session = PaymentSession.objects.get(pk=data["session_id"])
    assert data["url"] == f"https://pay.example/checkout?session={session.pk}"
    assert (data["amount"], session.amount, session.payment_link_id) == ("49.00", Decimal("49.000"), link["id"])
    assert (session.customer_email, session.client_reference_id) == ("b@example.test", "cart-1")
    assert "metadata" not in data
    assert response["Access-Control-Allow-Origin"] == ORIGIN


def test_a_tampered_amount_on_a_fixed_price_link_is_refused(api, pk_client):
    link = create_link(api)
    response = pk_client.post("/create_session", {"payment_link": link["id"], "amount": "0.01"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_not_allowed"
    assert PaymentSession.objects.count() == 0


def test_an_amount_outside_a_custom_links_range_is_refused(api, pk_client):
    link = create_link(api, amount=None, custom_amount={"min": "5", "max": "50"})
    for amount in ("4.99", "50.01", "-1", 1000000, "1e999999", "Infinity"):
        response = pk_client.post("/create_session", {"payment_link": link["id"], "amount": amount}, format="json")
        assert response.status_code == 400, amount
        assert response.json()["error"]["code"] == "amount_out_of_range"
    ok = pk_client.post("/create_session", {"payment_link": link["id"], "amount": "7.50"}, format="json")
    assert ok.status_code == 201 and ok.json()["amount"] == "7.50"


@pytest.mark.parametrize("field", ["currency", "description", "success_url", "metadata", "mode", "providers",
                                   "entitlement", "expires_at"])
def test_every_other_field_from_a_publishable_key_is_refused(api, pk_client, field):
    link = create_link(api)
    response = pk_client.post("/create_session", {"payment_link": link["id"], field: "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "parameter_not_allowed", "field": field,
                                         "message": response.json()["error"]["message"]}
    assert PaymentSession.objects.count() == 0


def test_a_publishable_key_reaches_only_its_own_merchants_links_and_mode(api, pk_client, other_merchant):
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    foreign = other.post("/payment_links", {"amount": "1.00"}, format="json").json()
    response = pk_client.post("/create_session", {"payment_link": foreign["id"]}, format="json")
    assert response.status_code == 404
    assert pk_client.post("/create_session", {}, format="json").json()["error"]["code"] == "payment_link_required"


def test_a_publishable_key_on_an_inactive_link_is_refused(api, pk_client):
    link = create_link(api)
    api.patch(f"/payment_links/{link['id']}", {"active": False}, format="json")
    response = pk_client.post("/create_session", {"payment_link": link["id"]}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_link_inactive"


def test_a_publishable_key_from_an_origin_not_allowed_is_refused(api, pk_client):
    link = create_link(api)
    response = pk_client.post("/create_session", {"payment_link": link["id"]}, format="json",
                              HTTP_ORIGIN="http://evil.example")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response


def test_publishable_key_sessions_are_rate_limited_per_link(api, pk_client, rates):
    rates(pay_link_ip="1000/min", pay_link="2/min")
    link = create_link(api)
    codes = [pk_client.post("/create_session", {"payment_link": link["id"]}, format="json").status_code
             for _ in range(3)]
    assert codes == [201, 201, 429]


# ---------------------------------------------------------------- the dashboard


def test_the_dashboard_creates_deactivates_and_counts_a_merchants_links(client, merchant, other_merchant):
    from django.contrib.auth import get_user_model

    from keys_app.services import merchant_login_create

    login = merchant_login_create(account=merchant)
    client.force_login(login.user)
    response = client.post("/admin/sessions_app/paymentlink/add/", {
        "mode": "test", "amount": "30.00", "currency": "EUR", "description": "Dashboard link",
        "success_url": "", "cancel_url": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    link = PaymentLink.objects.get(description="Dashboard link")
    assert (link.account_id, link.amount) == (merchant.pk, Decimal("30.000"))
    assert Event.objects.filter(object_id=link.pk, type="payment_link.created").exists()
    # two sessions from the link, one paid
    client.get(f"/pay/{link.slug}")
    client.get(f"/pay/{link.slug}")
    PaymentSession.objects.filter(pk=PaymentSession.objects.first().pk).update(status="paid")
    page = client.get(f"/admin/sessions_app/paymentlink/{link.pk}/change/").content.decode()
    assert "2 started, 1 paid, 30.00 EUR revenue" in page
    # the price is not a field of the change form
    client.post(f"/admin/sessions_app/paymentlink/{link.pk}/change/", {"active": "on", "description": "Renamed",
                                                                       "amount": "1.00"})
    link.refresh_from_db()
    assert (link.description, link.amount) == ("Renamed", Decimal("30.000"))
    response = client.post("/admin/sessions_app/paymentlink/", {"action": "deactivate",
                                                               "_selected_action": [link.pk]})
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.active is False
    # another merchant's link is not there
    foreign = PaymentLink.objects.create(account=other_merchant, amount=Decimal("1"), currency="EUR")
    assert client.get(f"/admin/sessions_app/paymentlink/{foreign.pk}/change/").status_code == 404
    assert foreign.pk not in client.get("/admin/sessions_app/paymentlink/").content.decode()
    assert get_user_model().objects.filter(username=login.user.username).exists()


def test_the_dashboard_refuses_a_custom_range_upside_down(client, merchant):
    from keys_app.services import merchant_login_create

    login = merchant_login_create(account=merchant)
    client.force_login(login.user)
    response = client.post("/admin/sessions_app/paymentlink/add/", {
        "mode": "test", "currency": "EUR", "custom_amount": "on", "custom_amount_min": "50",
        "custom_amount_max": "5", "description": "x"})
    assert response.status_code == 200
    assert "must not be below" in response.content.decode()
    assert PaymentLink.objects.count() == 0


# ---------------------------------------------------------------- sessions from a link, as create_session's


def test_a_link_session_is_written_with_its_event_and_audit_link(merchant, write_path):

    link = link_create(account=merchant, mode="test", actor="test", amount=Decimal("12.00"), description="Pass")
    session = link_session_start(link=link, actor="link:test", customer_email="buyer@example.com")

    stored = PaymentSession.objects.get(pk=session.pk)
    assert (stored.payment_link_id, stored.amount, stored.customer_email) == (link.pk, Decimal("12.00"),
                                                                              "buyer@example.com")
    event = Event.objects.get(object_id=str(session.pk), type="session.created")
    assert (event.mode, event.data["amount"]) == ("test", "12.00")
    audit = AuditEvent.objects.get(subject_id=str(session.pk), action="session.created")
    assert audit.after["payment_link"] == link.pk and audit.actor == "link:test"


def test_a_live_link_starts_no_session_on_a_development_server(merchant, settings):

    key_issue(account=merchant, mode="live")
    link = link_create(account=merchant, mode="live", actor="test", amount=Decimal("12.00"))
    settings.LIVE_MODE_ALLOWED = False

    with pytest.raises(errors.Forbidden) as refused:
        link_session_start(link=link, actor="link:test")

    assert refused.value.code == "live_mode_disabled"
    assert not PaymentSession.objects.filter(payment_link=link).exists()
