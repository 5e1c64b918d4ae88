"""Shared fixtures. Tests run against DATABASE_URL (PostgreSQL in CI), SQLite otherwise."""

from __future__ import annotations

import os

os.environ.setdefault("ALLOW_DEBUG", "1")

import pytest  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402


@pytest.fixture
def merchant(db):
    from keys_app.services import merchant_create

    account, issued = merchant_create(name="Acme GmbH", email="billing@acme.test")
    account.plaintext_key = issued.plaintext
    account.api_key = issued.api_key
    return account


@pytest.fixture
def other_merchant(db):
    from keys_app.services import merchant_create

    account, issued = merchant_create(name="Other Ltd", email="ops@other.test")
    account.plaintext_key = issued.plaintext
    account.api_key = issued.api_key
    return account


@pytest.fixture
def api(merchant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=merchant.plaintext_key)
    return client


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fulfilment_inline(settings):
    # Without a broker, fulfilment runs in the test itself, not on a thread that outlives it.
    settings.FULFILMENT_EAGER_BACKGROUND = False
