"""manage.py create_merchant and seed_demo print a key once; that key then authenticates."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from keys_app.keygen import parse_key
from keys_app.models import Account, ApiKey

pytestmark = pytest.mark.django_db


def _printed_key(output: str) -> str:
    return next(word for word in output.split() if word.startswith(("sk_test_", "sk_live_", "API_KEY=sk_"))
                ).removeprefix("API_KEY=")


@pytest.mark.parametrize(("flags", "mode"), [([], "test"), (["--live"], "live")])
def test_create_merchant_prints_a_key_that_authenticates(flags, mode):
    # when an operator creates a merchant
    out = io.StringIO()
    call_command("create_merchant", "Beta Shop", "owner@beta.test", *flags, stdout=out)

    # then a key of the asked mode is printed once, and it authenticates as that merchant
    key = _printed_key(out.getvalue())
    assert parse_key(key) == mode
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    response = client.get("/account")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["email"]) == ("Beta Shop", "owner@beta.test")
    assert ApiKey.objects.get().mode == mode


def test_create_merchant_refuses_a_bad_email():
    with pytest.raises(CommandError, match="not a valid email"):
        call_command("create_merchant", "Beta Shop", "not-an-email", stdout=io.StringIO())

    assert not Account.objects.exists()


def test_seed_demo_prints_the_demo_key_once():
    first, second = io.StringIO(), io.StringIO()

    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)

    key = _printed_key(first.getvalue())
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    assert client.post("/create_session", {"amount": "9.99"}, format="json").status_code == 201
    assert "sk_" not in second.getvalue().replace("create_merchant", "")
    assert Account.objects.count() == 1


def test_create_merchant_refuses_an_email_longer_than_254_characters():
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".test"

    with pytest.raises(CommandError, match="not a valid email"):
        call_command("create_merchant", "Beta Shop", email, stdout=io.StringIO())

    assert not Account.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "n" * 201])
def test_create_merchant_refuses_an_empty_or_overlong_name(name):
    with pytest.raises(CommandError, match="name"):
        call_command("create_merchant", name, "owner@beta.test", stdout=io.StringIO())

    assert not Account.objects.exists()
