"""The dashboard's account edit applies PATCH /account's rules, field by field."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def _form(account, **changes) -> dict:
    data = {f: getattr(account, f) for f in ("name", "email", "address", "vat_id", "vat_rate", "invoice_prefix",
                                             "issued_key_mode")}
    return {**data, **changes}


@pytest.mark.parametrize(("field", "value"), [
    ("vat_id", "DE 123<script>"),
    ("invoice_prefix", "inv/../"),
    ("invoice_prefix", "-LEADING"),
    ("address", "x" * 1001),
    ("name", "x" * 201),
])
def test_a_value_the_api_refuses_is_refused_by_the_dashboard_too(merchant_client, merchant, api, field, value):
    # the API refuses it
    assert api.patch("/account", {field: value}, format="json").status_code == 400
    before = getattr(merchant, field)
    # and so does the dashboard's form: the page comes back with the error, nothing is stored
    response = merchant_client.post(f"/admin/keys_app/account/{merchant.pk}/change/", _form(merchant, **{field: value}))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    merchant.refresh_from_db()
    assert getattr(merchant, field) == before


def test_a_value_the_api_takes_is_taken_by_the_dashboard(merchant_client, merchant):
    response = merchant_client.post(f"/admin/keys_app/account/{merchant.pk}/change/",
                                    _form(merchant, vat_id="DE123456789", invoice_prefix="ACME-2"))
    assert response.status_code == 302
    merchant.refresh_from_db()
    assert (merchant.vat_id, merchant.invoice_prefix) == ("DE123456789", "ACME-2")
