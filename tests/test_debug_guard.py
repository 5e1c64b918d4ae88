"""ALLOW_DEBUG cannot serve production: loopback clients only, and nothing live is created.

The suite itself runs with ALLOW_DEBUG (so the loopback middleware is installed here); the root
conftest lets it create live keys and sessions as a deployment does, and these tests turn that
refusal back on.
"""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from core import errors
from keys_app.models import ApiKey
from keys_app.services import key_issue, merchant_create
from sessions_app.models import PaymentSession


@pytest.fixture
def debug_server(settings):
    assert settings.ALLOW_DEBUG
    settings.LIVE_MODE_ALLOWED = False


@pytest.mark.parametrize("address", ["203.0.113.7", "10.0.0.2", "192.168.1.20", "2001:db8::1", ""])
def test_a_client_that_is_not_on_loopback_is_refused(client, db, address):
    response = client.get("/", REMOTE_ADDR=address)

    assert response.status_code == 403
    assert b"loopback" in response.content


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_clients_are_served(client, db, address):
    assert client.get("/", REMOTE_ADDR=address).status_code == 200


def test_a_forwarded_header_does_not_make_a_remote_client_local(client, db, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    response = client.get("/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert response.status_code == 403


def test_no_live_api_key_is_issued(debug_server, merchant):
    with pytest.raises(errors.Forbidden) as refused:
        key_issue(account=merchant, mode="live")

    assert refused.value.code == "live_mode_disabled"
    assert not ApiKey.objects.filter(mode="live").exists()


def test_the_command_creates_no_live_merchant(debug_server, db):
    with pytest.raises(CommandError, match="ALLOW_DEBUG"):
        call_command("create_merchant", "Shop", "shop@example.test", "--live")

    assert not ApiKey.objects.exists()


def test_no_live_session_is_created_even_with_a_live_key(merchant, settings, anon):
    # given a live key made by a production server on the same database
    live = key_issue(account=merchant, mode="live")
    # when the development server is asked for a live session
    settings.LIVE_MODE_ALLOWED = False
    anon.credentials(HTTP_X_API_KEY=live.plaintext)
    response = anon.post("/create_session", {"amount": "10.00", "currency": "EUR"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "live_mode_disabled"
    assert not PaymentSession.objects.exists()


def test_test_mode_still_works_on_a_development_server(debug_server, db, anon):
    account, issued = merchant_create(name="Dev shop", email="dev@example.test")
    anon.credentials(HTTP_X_API_KEY=issued.plaintext)

    response = anon.post("/create_session", {"amount": "10.00", "currency": "EUR"}, format="json")

    assert response.status_code == 201


def test_staff_cannot_issue_a_live_key_on_a_development_server(debug_server, merchant, client):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("root", "root@example.test", "correct horse battery")
    client.force_login(staff)

    response = client.post(f"/admin/keys_app/apikey/{merchant.api_key.pk}/upgrade/")

    assert response.status_code == 200
    assert "ALLOW_DEBUG" in response.content.decode()
    assert not ApiKey.objects.filter(mode="live").exists()
