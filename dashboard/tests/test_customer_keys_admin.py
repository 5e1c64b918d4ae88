"""The dashboard's customer keys: each merchant sees and manages only the keys it sold, and every step is audited."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from keys_app.entitlements import entitlement_key_issue
from keys_app.models import EntitlementKey

LIST = "/admin/keys_app/entitlementkey/"


def _issue(account, email="buyer@example.com"):
    return entitlement_key_issue(account=account, session_id=uuid.uuid4(), customer_email=email, actor="test")


def _verify(account, plaintext: str) -> str:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=account.plaintext_key)
    return client.post("/keys/verify", {"key": plaintext}, format="json").json()["code"]


def _shown_key(response) -> str:
    html = response.content.decode()
    return html.split('data-testid="new-key"')[1].split(">", 1)[1].split("<", 1)[0]


def test_the_list_shows_only_the_merchant_s_own_customer_keys(merchant_client, merchant, other_merchant):
    mine, theirs = _issue(merchant, "mine@example.com"), _issue(other_merchant, "theirs@example.com")

    html = merchant_client.get(LIST).content.decode()

    assert mine.key.display in html and "mine@example.com" in html
    assert theirs.key.display not in html and "theirs@example.com" not in html
    assert mine.plaintext not in html
    for action in ("change", "revoke", "rotate", "upgrade"):
        assert merchant_client.get(f"{LIST}{theirs.key.pk}/{action}/").status_code == 404, action


def test_the_merchant_revokes_rotates_and_upgrades_from_the_dashboard(merchant_client, merchant):
    revoked, rotated, upgraded = _issue(merchant), _issue(merchant), _issue(merchant)

    # revoke
    assert merchant_client.post(f"{LIST}{revoked.key.pk}/revoke/").status_code == 302
    assert _verify(merchant, revoked.plaintext) == "revoked"

    # rotate without overlap: the new key is shown once and verifies, the old one stops
    response = merchant_client.post(f"{LIST}{rotated.key.pk}/rotate/", {"overlap": "0"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_plain = _shown_key(response)
    assert new_plain.startswith("ek_test_") and _verify(merchant, new_plain) == "valid"
    assert _verify(merchant, rotated.plaintext) == "expired"
    assert new_plain not in merchant_client.get(LIST).content.decode()

    # upgrade: a live key for the same purchase
    response = merchant_client.post(f"{LIST}{upgraded.key.pk}/upgrade/", {"overlap": "24h"})
    live_plain = _shown_key(response)
    assert live_plain.startswith("ek_live_")
    live = EntitlementKey.objects.get(replaces=upgraded.key)
    assert (live.mode, live.session_id) == ("live", upgraded.key.session_id)

    actor = "admin:billing@acme.test"
    assert {a for a in AuditEvent.objects.filter(actor=actor).values_list("action", flat=True)} == {
        "entitlement_key.revoked", "entitlement_key.rotated", "entitlement_key.upgraded"}


def test_the_revoke_action_on_the_list_touches_only_the_merchant_s_keys(merchant_client, merchant, other_merchant):
    mine, theirs = _issue(merchant), _issue(other_merchant)

    merchant_client.post(LIST, {"action": "revoke_selected", "_selected_action": [str(mine.key.pk), str(theirs.key.pk)]})

    assert EntitlementKey.objects.get(pk=mine.key.pk).status == "revoked"
    assert EntitlementKey.objects.get(pk=theirs.key.pk).status == "active"


def test_a_refused_rotation_is_a_message_not_an_error(merchant_client, merchant):
    issued = _issue(merchant)
    merchant_client.post(f"{LIST}{issued.key.pk}/revoke/")

    response = merchant_client.post(f"{LIST}{issued.key.pk}/rotate/", {"overlap": "0"}, follow=True)

    assert response.status_code == 200 and "cannot be replaced" in response.content.decode()
    assert EntitlementKey.objects.count() == 1


@pytest.mark.parametrize("setting", ["issued_key_mode", "email_key_to_customer"])
def test_the_merchant_sets_its_key_options_on_its_account_page(merchant_client, merchant, setting):
    data = {f: getattr(merchant, f) for f in ("name", "email", "address", "vat_id", "vat_rate", "invoice_prefix")}
    data["issued_key_mode"] = "live" if setting == "issued_key_mode" else "test"
    if setting == "email_key_to_customer":
        data["email_key_to_customer"] = "on"

    assert merchant_client.post(f"/admin/keys_app/account/{merchant.pk}/change/", data).status_code == 302

    merchant.refresh_from_db()
    assert (merchant.issued_key_mode, merchant.email_key_to_customer) == (
        ("live", False) if setting == "issued_key_mode" else ("test", True))
