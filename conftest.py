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
def _live_mode_as_deployed(settings):
    """The suite runs with ALLOW_DEBUG for its placeholder secrets, yet exercises live mode as a
    deployment does; tests/test_debug_guard.py turns the refusal of live keys and sessions back on."""
    settings.LIVE_MODE_ALLOWED = True


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache; each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def rates(settings):
    """Set abuse-limit rates for one test: rates(create_session_key="2/min")."""

    def apply(**scopes: str) -> None:
        current = settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {**current, "DEFAULT_THROTTLE_RATES": {**current["DEFAULT_THROTTLE_RATES"], **scopes}}

    return apply


@pytest.fixture(autouse=True)
def _fulfilment_inline(settings):
    # Without a broker, fulfilment runs in the test itself, not on a thread that outlives it.
    settings.FULFILMENT_EAGER_BACKGROUND = False
