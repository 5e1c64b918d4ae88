"""Authenticated keys are cached, and every change to a key or its account is seen at once."""

import contextlib

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from keys_app.models import ApiKey
from keys_app.services import ROTATION_OVERLAPS, account_update, key_revoke, key_rotate


@pytest.fixture(autouse=True)
def _key_cache(settings):
    settings.API_KEY_CACHE_SECONDS = 60
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "key-cache-tests"}}
    cache.clear()
    yield
    with contextlib.suppress(Exception):  # one test points the cache at a closed port
        cache.clear()


def key_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/account").status_code == 200
    return sum(q["sql"].startswith("SELECT") and "keys_app_apikey" in q["sql"] for q in queries.captured_queries)


def test_a_second_request_with_the_same_key_does_not_read_the_key_again(api):
    # given one authenticated request
    assert key_queries(api) == 1

    # then the next one is authenticated from the cache
    assert key_queries(api) == 0


def test_a_revoked_key_is_refused_on_the_next_request_although_it_was_cached(api, merchant):
    # given a key that has been cached by a request
    assert api.get("/account").status_code == 200

    # when it is revoked
    key_revoke(key=merchant.api_key, actor="test")

    # then the very next request is refused
    response = api.get("/account")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"


def test_a_key_rotated_without_overlap_is_refused_and_its_successor_accepted(api, merchant):
    assert api.get("/account").status_code == 200

    issued = key_rotate(key=merchant.api_key, overlap=ROTATION_OVERLAPS["0"], actor="test")

    assert api.get("/account").status_code == 401
    successor = APIClient()
    successor.credentials(HTTP_X_API_KEY=issued.plaintext)
    assert successor.get("/account").status_code == 200


def test_a_key_changed_outside_the_services_is_not_served_stale(api, merchant):
    # given a cached key
    assert api.get("/account").status_code == 200

    # when someone (the admin, a shell) saves it revoked
    key = ApiKey.objects.get(pk=merchant.api_key.pk)
    key.status = ApiKey.Status.REVOKED
    key.save()

    # then the next request sees it
    assert api.get("/account").status_code == 401


def test_an_account_change_is_seen_by_the_next_request(api, merchant):
    assert api.get("/account").json()["name"] == "Acme GmbH"

    account_update(account=merchant, actor="test", name="Acme Europe GmbH")

    assert api.get("/account").json()["name"] == "Acme Europe GmbH"


def test_an_unreachable_cache_falls_back_to_the_database(api, settings):
    # given a cache server that cannot be reached (nothing listens on port 9 of loopback)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:9/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}

    # then keys are still checked, against the database
    assert api.get("/account").status_code == 200
    assert APIClient(HTTP_X_API_KEY="sk_test_" + "A" * 30).get("/account").status_code == 401
