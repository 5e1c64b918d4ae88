"""A merchant sees its own rows only, on every dashboard page, with a second merchant's data present."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from dashboard.tests.conftest import make_delivery, make_session
from keys_app.entitlements import entitlement_key_issue
from keys_app.models import ApiKey


@pytest.fixture
def world(merchant, other_merchant):
    """Both merchants have a paid and a failed session, deliveries, keys and audit rows."""
    mine = make_session(merchant, amount="11.00", status="paid", customer_email="buyer@acme.test",
                        client_reference_id="acme-order-1", provider="stripe")
    make_session(merchant, amount="3.00", status="failed", failure_reason="card_declined",
                 customer_email="loser@acme.test")
    theirs = make_session(other_merchant, amount="777.00", status="paid", customer_email="buyer@other.test",
                          client_reference_id="other-order-1", provider="otherpay", currency="GBP")
    their_customer_key = entitlement_key_issue(account=other_merchant, session_id=theirs.pk,
                                               customer_email="buyer@other.test", actor="test").key
    my_customer_key = entitlement_key_issue(account=merchant, session_id=mine.pk, customer_email="buyer@acme.test",
                                            actor="test").key
    return {
        "my_customer_key": my_customer_key,
        "their_customer_key": their_customer_key,
        "mine": mine,
        "theirs": theirs,
        "my_delivery": make_delivery(mine, event_id="evt_acme_1"),
        "their_delivery": make_delivery(theirs, event_id="evt_other_1", outcome="failed"),
        "my_key": merchant.api_key,
        "their_key": other_merchant.api_key,
        "their_audit": AuditEvent.objects.filter(account_id=other_merchant.pk).first(),
        "my_audit": AuditEvent.objects.filter(account_id=merchant.pk).first(),
    }


CHANGELISTS = {
    "sessions": "/admin/sessions_app/paymentsession/",
    "deliveries": "/admin/sessions_app/webhookevent/",
    "keys": "/admin/keys_app/apikey/",
    "customer keys": "/admin/keys_app/entitlementkey/",
    "audit": "/admin/audit/auditevent/",
    "accounts": "/admin/keys_app/account/",
}


def their_markers(world, other_merchant) -> list[str]:
    return ["buyer@other.test", str(world["theirs"].pk), "evt_other_1", world["their_key"].display, "Other Ltd",
            "otherpay", "777.00", world["their_customer_key"].display]


@pytest.mark.parametrize("page", CHANGELISTS)
def test_a_changelist_lists_only_the_merchants_own_rows(merchant_client, world, other_merchant, page):
    response = merchant_client.get(CHANGELISTS[page])

    assert response.status_code == 200
    html = response.content.decode()
    for marker in their_markers(world, other_merchant):
        assert marker not in html, f"{marker} leaked into {page}"


def test_the_changelists_show_the_merchants_own_rows(merchant_client, world):
    assert "buyer@acme.test" in merchant_client.get(CHANGELISTS["sessions"]).content.decode()
    assert "evt_acme_1" in merchant_client.get(CHANGELISTS["deliveries"]).content.decode()
    assert world["my_key"].display in merchant_client.get(CHANGELISTS["keys"]).content.decode()
    assert world["my_customer_key"].display in merchant_client.get(CHANGELISTS["customer keys"]).content.decode()
    assert "session.created" in merchant_client.get(CHANGELISTS["audit"]).content.decode() or \
        "account.created" in merchant_client.get(CHANGELISTS["audit"]).content.decode()
    assert "Acme GmbH" in merchant_client.get(CHANGELISTS["accounts"]).content.decode()


def _object_urls(world, other_merchant, whose: str) -> dict[str, str]:
    if whose == "theirs":
        return {
            "session": f"/admin/sessions_app/paymentsession/{world['theirs'].pk}/change/",
            "delivery": f"/admin/sessions_app/webhookevent/{world['their_delivery'].pk}/change/",
            "key": f"/admin/keys_app/apikey/{world['their_key'].pk}/change/",
            "key_rotate": f"/admin/keys_app/apikey/{world['their_key'].pk}/rotate/",
            "key_revoke": f"/admin/keys_app/apikey/{world['their_key'].pk}/revoke/",
            "audit": f"/admin/audit/auditevent/{world['their_audit'].pk}/change/",
            "account": f"/admin/keys_app/account/{other_merchant.pk}/change/",
            "history": f"/admin/sessions_app/paymentsession/{world['theirs'].pk}/history/",
        }
    return {
        "session": f"/admin/sessions_app/paymentsession/{world['mine'].pk}/change/",
        "delivery": f"/admin/sessions_app/webhookevent/{world['my_delivery'].pk}/change/",
        "key": f"/admin/keys_app/apikey/{world['my_key'].pk}/change/",
        "key_rotate": f"/admin/keys_app/apikey/{world['my_key'].pk}/rotate/",
        "key_revoke": f"/admin/keys_app/apikey/{world['my_key'].pk}/revoke/",
        "audit": f"/admin/audit/auditevent/{world['my_audit'].pk}/change/",
    }


@pytest.mark.parametrize("page", ["session", "delivery", "key", "key_rotate", "key_revoke", "audit", "account",
                                  "history"])
def test_another_merchants_object_by_url_is_a_404(merchant_client, world, other_merchant, page):
    assert merchant_client.get(_object_urls(world, other_merchant, "theirs")[page]).status_code == 404


@pytest.mark.parametrize("page", ["session", "delivery", "key", "key_rotate", "key_revoke", "audit"])
def test_the_merchants_own_object_opens(merchant_client, world, other_merchant, page):
    assert merchant_client.get(_object_urls(world, other_merchant, "mine")[page]).status_code == 200


def test_posting_to_another_merchants_key_changes_nothing(merchant_client, world, other_merchant):
    their_key = world["their_key"]

    rotate = merchant_client.post(f"/admin/keys_app/apikey/{their_key.pk}/rotate/", {"overlap": "0"})
    revoke = merchant_client.post(f"/admin/keys_app/apikey/{their_key.pk}/revoke/")

    assert (rotate.status_code, revoke.status_code) == (404, 404)
    their_key.refresh_from_db()
    assert their_key.status == ApiKey.Status.ACTIVE
    assert ApiKey.objects.filter(account=other_merchant).count() == 1


@pytest.mark.parametrize("term_key", ["email", "uuid", "reference", "provider_reference"])
def test_search_finds_nothing_of_another_merchant(merchant_client, world, term_key):
    world["theirs"].provider_reference = "pi_other_secret"
    world["theirs"].save(update_fields=["provider_reference"])
    term = {"email": "buyer@other.test", "uuid": str(world["theirs"].pk), "reference": "other-order-1",
            "provider_reference": "pi_other_secret"}[term_key]

    html = merchant_client.get(CHANGELISTS["sessions"], {"q": term}).content.decode()

    results = html.split('id="changelist-form"')[1]  # the search box above echoes the term
    assert "buyer@other.test" not in results
    assert "0 results" in html


def test_search_finds_the_merchants_own_session_by_every_key(merchant_client, world):
    world["mine"].provider_reference = "pi_acme_1"
    world["mine"].save(update_fields=["provider_reference"])
    for term in ("buyer@acme.test", str(world["mine"].pk), "acme-order-1", "pi_acme_1"):
        html = merchant_client.get(CHANGELISTS["sessions"], {"q": term}).content.decode()
        assert "buyer@acme.test" in html, term


def test_search_of_deliveries_and_audit_is_scoped(merchant_client, world):
    assert "evt_other_1" not in merchant_client.get(CHANGELISTS["deliveries"], {"q": "evt_other"}).content.decode()
    assert "evt_acme_1" in merchant_client.get(CHANGELISTS["deliveries"], {"q": "evt_acme"}).content.decode()
    audit = merchant_client.get(CHANGELISTS["audit"], {"q": str(world["theirs"].pk)}).content.decode()
    assert "0 results" in audit


def test_filters_offer_only_the_merchants_own_values(merchant_client, world):
    html = merchant_client.get(CHANGELISTS["sessions"]).content.decode()

    assert "currency=EUR" in html
    assert "currency=GBP" not in html  # only the other merchant uses GBP
    assert "otherpay" not in html
    assert "Other Ltd" not in html  # no account filter for merchants


def test_a_filter_on_another_merchants_values_or_account_shows_nothing_of_theirs(merchant_client, world,
                                                                                  other_merchant):
    by_provider = merchant_client.get(CHANGELISTS["sessions"], {"provider": "otherpay"}).content.decode()
    by_account = merchant_client.get(CHANGELISTS["sessions"], {"account__id__exact": other_merchant.pk})

    assert "buyer@other.test" not in by_provider
    assert by_account.status_code == 400  # Django admin refuses a lookup it does not allow
    assert "buyer@other.test" not in by_account.content.decode()


@pytest.mark.parametrize("app,model,field", [("keys_app", "apikey", "account"),
                                             ("sessions_app", "webhookevent", "session"),
                                             ("sessions_app", "paymentsession", "account")])
def test_autocomplete_returns_only_the_merchants_own_objects(merchant_client, world, merchant, app, model, field):
    response = merchant_client.get("/admin/autocomplete/", {"app_label": app, "model_name": model,
                                                            "field_name": field, "term": ""})

    assert response.status_code == 200
    ids = {r["id"] for r in response.json()["results"]}
    assert ids
    own = {str(merchant.pk)} if field == "account" else {str(s.pk) for s in merchant.sessions.all()}
    assert ids <= own


def test_the_revoke_action_ignores_another_merchants_key(merchant_client, world):
    their_key, my_key = world["their_key"], world["my_key"]

    response = merchant_client.post(CHANGELISTS["keys"], {"action": "revoke_selected",
                                                          "_selected_action": [their_key.pk, my_key.pk]})

    assert response.status_code == 302
    their_key.refresh_from_db()
    my_key.refresh_from_db()
    assert their_key.status == ApiKey.Status.ACTIVE
    assert my_key.status == ApiKey.Status.REVOKED


def test_the_reprocess_action_ignores_another_merchants_delivery(merchant_client, world):
    their = world["their_delivery"]

    merchant_client.post(CHANGELISTS["deliveries"], {"action": "reprocess", "_selected_action": [their.pk]})

    their.refresh_from_db()
    assert their.outcome == "failed"
    assert not AuditEvent.objects.filter(action="webhook.reprocessed").exists()


def test_the_verify_action_walks_only_the_merchants_own_chain(merchant_client, world, merchant):
    response = merchant_client.post(CHANGELISTS["audit"], {
        "action": "verify_chain", "_selected_action": [world["their_audit"].pk, world["my_audit"].pk]}, follow=True)

    text = response.content.decode()
    assert f"account:{merchant.pk}" in text
    assert f"account:{world['theirs'].account_id}" not in text


def _csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_paid_sessions_export_holds_only_the_merchants_own_sessions(merchant_client, world, other_merchant):
    for params in ({}, {"account": other_merchant.pk}, {"mode": "test"}):
        rows = _csv_rows(merchant_client.get("/admin/export/paid-sessions.csv", params))
        ids = [r[0] for r in rows[1:]]
        assert ids == [str(world["mine"].pk)], params


def test_the_dashboard_figures_leave_out_another_merchant(merchant_client, world):
    html = merchant_client.get("/admin/?mode=test").content.decode()

    assert 'data-testid="total-EUR">11.00<' in html
    assert "777.00" not in html


def test_staff_see_every_merchant(staff_client, world):
    for page in ("sessions", "deliveries", "accounts"):
        html = staff_client.get(CHANGELISTS[page]).content.decode()
        assert "Other Ltd" in html or "evt_other_1" in html, page
    assert staff_client.get(f"/admin/sessions_app/paymentsession/{world['theirs'].pk}/change/").status_code == 200
    rows = _csv_rows(staff_client.get("/admin/export/paid-sessions.csv"))
    assert {r[0] for r in rows[1:]} == {str(world["mine"].pk), str(world["theirs"].pk)}
    staff_dashboard = staff_client.get("/admin/?mode=test").content.decode()
    assert 'data-testid="total-EUR">11.00<' in staff_dashboard
    assert 'data-testid="total-GBP">777.00<' in staff_dashboard


def test_a_staff_flagged_user_without_an_account_is_not_let_in(client, world):
    user = get_user_model().objects.create_user("drifter", "d@x.test", "pw-123456789", is_staff=True)
    client.force_login(user)

    for url in ["/admin/", *CHANGELISTS.values(), "/admin/export/paid-sessions.csv"]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, world):
    response = client.get("/admin/export/paid-sessions.csv")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def _account_form(account, **changes) -> dict:
    data = {f: getattr(account, f) for f in ("name", "email", "address", "vat_id", "vat_rate", "invoice_prefix",
                                             "issued_key_mode")}
    return {**data, **changes}


def test_a_merchant_edits_its_own_business_details_through_the_service(merchant_client, merchant):
    response = merchant_client.post(f"/admin/keys_app/account/{merchant.pk}/change/",
                                    _account_form(merchant, vat_id="DE123456789", invoice_prefix="ACME"))

    assert response.status_code == 302
    merchant.refresh_from_db()
    assert (merchant.vat_id, merchant.invoice_prefix) == ("DE123456789", "ACME")
    row = AuditEvent.objects.get(action="account.updated", account_id=merchant.pk)
    assert row.actor == "admin:billing@acme.test" and row.after["vat_id"] == "DE123456789"


def test_a_merchant_cannot_edit_another_merchants_account(merchant_client, other_merchant):
    response = merchant_client.post(f"/admin/keys_app/account/{other_merchant.pk}/change/",
                                    _account_form(other_merchant, name="Pwned"))

    assert response.status_code == 404
    other_merchant.refresh_from_db()
    assert other_merchant.name == "Other Ltd"


def test_staff_pick_one_merchant_on_the_dashboard(staff_client, world, other_merchant):
    html = staff_client.get("/admin/", {"mode": "test", "account": other_merchant.pk}).content.decode()

    assert 'data-testid="total-GBP">777.00<' in html
    assert 'data-testid="total-EUR"' not in html
    assert "<option value" in html and "Other Ltd" in html


def test_a_merchant_cannot_pick_another_merchant_on_the_dashboard(merchant_client, world, other_merchant):
    html = merchant_client.get("/admin/", {"mode": "test", "account": other_merchant.pk}).content.decode()

    assert 'data-testid="total-EUR">11.00<' in html
    assert "Other Ltd" not in html
