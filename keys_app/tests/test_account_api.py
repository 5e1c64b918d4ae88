"""GET and PATCH /account: the merchant's own settings, validated like every other input, changes audited."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from keys_app.models import Account

pytestmark = pytest.mark.django_db


def test_it_shows_the_merchant_its_own_settings(api, merchant, other_merchant):
    response = api.get("/account")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["email"]) == (merchant.pk, "Acme GmbH", "billing@acme.test")
    assert set(body) >= {"address", "vat_id", "vat_rate", "invoice_prefix", "created_at"}
    assert "Other Ltd" not in json.dumps(body)


def test_a_valid_change_is_saved_and_audited(api, merchant):
    # when the merchant changes its settings
    response = api.patch("/account", {
        "name": "Acme Europe GmbH", "email": "finance@acme.test", "address": "Hauptstr. 1\n10115 Berlin",
        "vat_id": "DE123456789", "vat_rate": "19.00", "invoice_prefix": "ACME-EU",
    }, format="json")

    # then they are saved
    assert response.status_code == 200, response.content
    account = Account.objects.get(pk=merchant.pk)
    assert (account.name, account.email, account.vat_id, str(account.vat_rate), account.invoice_prefix) == (
        "Acme Europe GmbH", "finance@acme.test", "DE123456789", "19.00", "ACME-EU")
    assert response.json()["vat_rate"] == "19.00"

    # and the change is in the audit trail with its before and after
    row = AuditEvent.objects.get(action="account.updated", subject_id=str(merchant.pk))
    assert row.before["name"] == "Acme GmbH"
    assert row.after["name"] == "Acme Europe GmbH"
    assert row.after["vat_rate"] == "19.00"
    assert row.actor == f"api_key:{merchant.api_key.pk}"


def test_a_partial_change_touches_only_the_fields_sent(api, merchant):
    response = api.patch("/account", {"vat_rate": 7}, format="json")

    assert response.status_code == 200
    account = Account.objects.get(pk=merchant.pk)
    assert (account.name, str(account.vat_rate)) == ("Acme GmbH", "7.00")
    assert set(AuditEvent.objects.get(action="account.updated").after) == {"vat_rate"}


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"email": "not-an-email"}, "email_invalid", "email"),
    ({"vat_rate": 150}, "vat_rate_max_value", "vat_rate"),
    ({"vat_rate": "-1"}, "vat_rate_min_value", "vat_rate"),
    ({"vat_rate": "19.555"}, "vat_rate_max_decimal_places", "vat_rate"),
    ({"vat_rate": "lots"}, "vat_rate_invalid", "vat_rate"),
    ({"invoice_prefix": "inv 2024!"}, "invoice_prefix_invalid", "invoice_prefix"),
    ({"invoice_prefix": "A" * 13}, "invoice_prefix_invalid", "invoice_prefix"),
    ({"vat_id": "DE<script>"}, "vat_id_invalid", "vat_id"),
    ({"name": ""}, "name_blank", "name"),
    ({"name": "n" * 201}, "name_max_length", "name"),
    ({"plan": "enterprise"}, "parameter_unknown", "plan"),
    ({"id": 999}, "parameter_unknown", "id"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "parameter_unknown", "created_at"),
])
def test_a_bad_change_is_a_400_with_its_code_and_changes_nothing(api, merchant, body, code, field):
    before = Account.objects.filter(pk=merchant.pk).values().get()

    response = api.patch("/account", body, format="json")

    assert response.status_code == 400, response.content
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    assert Account.objects.filter(pk=merchant.pk).values().get() == before
    assert not AuditEvent.objects.filter(action="account.updated").exists()


@pytest.mark.parametrize(("raw", "code"), [("[1, 2]", "body_invalid"), ("{oops", "invalid_json")])
def test_a_body_that_is_not_a_json_object_is_a_400(api, raw, code):
    response = api.patch("/account", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_the_account_needs_a_key(anon):
    assert anon.get("/account").status_code == 401
    assert anon.patch("/account", {"name": "x"}, format="json").status_code == 401


def test_an_email_longer_than_the_column_is_a_400_not_a_500(api, merchant):
    # a syntactically valid address of 260 characters: valid for the validator, too long for the column
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".test"
    assert 254 < len(email) <= 320

    response = api.patch("/account", {"email": email}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "email_max_length"
    assert Account.objects.get(pk=merchant.pk).email == "billing@acme.test"


def test_an_empty_change_writes_nothing(api, merchant):
    response = api.patch("/account", {}, format="json")

    assert response.status_code == 200
    assert response.json()["name"] == "Acme GmbH"
    assert not AuditEvent.objects.filter(action="account.updated").exists()
