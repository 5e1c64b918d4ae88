"""Publishable keys: shown in GET /account, rotatable, refused everywhere but create_session;
secret keys refused from browsers; CORS only for the merchant's allowed origins."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from keys_app import receivers
from keys_app.keygen import parse_publishable_key
from keys_app.models import PublishableKey
from keys_app.publishable import publishable_key_ensure

pytestmark = pytest.mark.django_db

ORIGIN = "http://127.0.0.2:8123"


def with_key(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def test_get_account_shows_the_publishable_key_of_the_keys_mode(api, merchant):
    data = api.get("/account").json()
    assert data["publishable_key"].startswith("pk_test_")
    assert parse_publishable_key(data["publishable_key"]) == "test"
    assert data["allowed_origins"] == []
    # the same key on every read: one per merchant and mode
    assert api.get("/account").json()["publishable_key"] == data["publishable_key"]
    assert PublishableKey.objects.filter(account=merchant).count() == 1


def test_a_live_secret_key_sees_the_live_publishable_key(merchant):
    from keys_app.services import key_upgrade_live

    live = key_upgrade_live(account=merchant, actor="staff")
    assert with_key(live.plaintext).get("/account").json()["publishable_key"].startswith("pk_live_")


def test_rotating_replaces_the_key_and_the_old_one_stops(api, merchant):
    old = api.get("/account").json()["publishable_key"]
    response = api.post("/account/publishable_key/rotate")
    assert response.status_code == 200
    new = response.json()["publishable_key"]
    assert new != old and new.startswith("pk_test_")
    assert api.get("/account").json()["publishable_key"] == new
    link = api.post("/payment_links", {"amount": "5.00"}, format="json").json()
    assert with_key(old).post("/create_session", {"payment_link": link["id"]}, format="json").status_code == 401
    assert with_key(new).post("/create_session", {"payment_link": link["id"]}, format="json").status_code == 201


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/sessions"), ("get", "/account"), ("post", "/keys/verify"), ("get", "/payment_links"),
    ("post", "/payment_links"), ("get", "/keys"), ("patch", "/account"), ("post", "/account/publishable_key/rotate"),
])
def test_a_publishable_key_is_refused_on_every_other_endpoint(merchant, method, path):
    key = publishable_key_ensure(account=merchant, mode="test").key
    response = getattr(with_key(key), method)(path, {}, format="json")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "key_publishable"
    assert "payment_link" in error["message"]


def test_a_secret_key_from_a_browser_origin_is_refused_naming_the_publishable_path(api, merchant):
    for method, path in (("post", "/create_session"), ("get", "/sessions"), ("get", "/account")):
        response = getattr(api, method)(path, {"amount": "5.00"} if method == "post" else None, format="json",
                                        HTTP_ORIGIN="https://shop.example")
        assert response.status_code == 401, path
        error = response.json()["error"]
        assert error["code"] == "secret_key_in_browser"
        assert "publishable key" in error["message"] and "/pay/" in error["message"]
    # the same key from a server (no Origin header) works
    assert api.post("/create_session", {"amount": "5.00"}, format="json").status_code == 201


def test_allowed_origins_are_set_normalised_and_checked(api):
    response = api.patch("/account", {"allowed_origins": ["https://Shop.Example:443/", "http://127.0.0.2:8123"]},
                         format="json")
    assert response.status_code == 200
    assert response.json()["allowed_origins"] == ["https://shop.example", "http://127.0.0.2:8123"]
    for bad in (["https://shop.example/path"], ["ftp://shop.example"], ["*"], "https://shop.example",
                ["https://a.example"] * 0 + [f"https://{n}.example" for n in range(21)]):
        response = api.patch("/account", {"allowed_origins": bad}, format="json")
        assert response.status_code == 400, bad
        assert response.json()["error"]["field"] == "allowed_origins"


def _preflight(client, origin: str, path: str = "/create_session"):
    return client.options(path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-api-key")


def test_cors_answers_only_allowed_origins_and_only_on_create_session(api, anon, merchant):
    api.patch("/account", {"allowed_origins": [ORIGIN]}, format="json")
    allowed = _preflight(anon, ORIGIN)
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert "x-api-key" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in allowed
    assert "Access-Control-Allow-Origin" not in _preflight(anon, "http://evil.example")
    assert "Access-Control-Allow-Origin" not in _preflight(anon, ORIGIN, "/sessions")
    assert "Access-Control-Allow-Origin" not in _preflight(anon, ORIGIN, "/payment_links")


def test_cors_for_a_publishable_key_follows_its_own_merchants_origins(api, merchant, other_merchant):
    api.patch("/account", {"allowed_origins": [ORIGIN]}, format="json")
    other_merchant.allowed_origins = ["https://other.example"]
    other_merchant.save(update_fields=["allowed_origins"])
    link = api.post("/payment_links", {"amount": "5.00"}, format="json").json()
    key = publishable_key_ensure(account=merchant, mode="test").key
    # an origin another merchant allowed is not this merchant's
    response = with_key(key).post("/create_session", {"payment_link": link["id"]}, format="json",
                                  HTTP_ORIGIN="https://other.example")
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response


def test_cors_reuses_the_key_the_view_authenticated(api, merchant, monkeypatch):
    api.patch("/account", {"allowed_origins": [ORIGIN]}, format="json")
    link = api.post("/payment_links", {"amount": "5.00"}, format="json").json()
    key = publishable_key_ensure(account=merchant, mode="test").key
    seen = []
    monkeypatch.setattr(receivers, "publishable_key_lookup", lambda *, raw: seen.append(raw))
    response = with_key(key).post("/create_session", {"payment_link": link["id"]}, format="json",
                                  HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert seen == []


def test_the_dashboard_shows_the_publishable_key_edits_origins_and_replaces_the_key(client, merchant):
    from keys_app.services import merchant_login_create

    login = merchant_login_create(account=merchant)
    client.force_login(login.user)
    key = publishable_key_ensure(account=merchant, mode="test").key
    page = client.get(f"/admin/keys_app/account/{merchant.pk}/change/").content.decode()
    assert key in page
    form = {"name": merchant.name, "email": merchant.email, "address": "", "vat_id": "", "vat_rate": "0",
            "invoice_prefix": "INV", "issued_key_mode": "test", "allowed_origins": '["https://shop.example/"]'}
    assert client.post(f"/admin/keys_app/account/{merchant.pk}/change/", form).status_code == 302
    merchant.refresh_from_db()
    assert merchant.allowed_origins == ["https://shop.example"]
    bad = client.post(f"/admin/keys_app/account/{merchant.pk}/change/", {**form, "allowed_origins": '["*"]'})
    assert bad.status_code == 200 and "is not an origin" in bad.content.decode()
    client.post("/admin/keys_app/account/", {"action": "rotate_publishable_keys", "_selected_action": [merchant.pk]})
    assert publishable_key_ensure(account=merchant, mode="test").key != key
