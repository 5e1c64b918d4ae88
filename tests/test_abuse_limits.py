"""Abuse limits: request rates per key and per IP, cheap webhook refusals, admin brute force."""

from __future__ import annotations

import json
import os
import uuid

import pytest
import redis
from django.contrib.auth import get_user_model

from keys_app.services import key_revoke
from sessions_app.models import PaymentSession
from sessions_app.providers import stripe_provider


def _create(client, **extra):
    return client.post("/create_session", {"amount": "10.00"}, format="json", **extra)


def _assert_rate_limited(response):
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1


def test_create_session_is_limited_per_api_key(api, other_merchant, anon, rates):
    # given a limit of 2 sessions a minute per key
    rates(create_session_key="2/min")
    assert _create(api).status_code == 201
    assert _create(api).status_code == 201
    # when the same key asks a third time
    third = _create(api)
    # then it is refused with Retry-After, and nothing was created
    _assert_rate_limited(third)
    assert PaymentSession.objects.count() == 2
    # and another merchant's key is not affected
    anon.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    assert _create(anon).status_code == 201


def test_create_session_is_limited_per_ip_across_keys(api, other_merchant, anon, rates):
    # given a limit of 2 a minute per address
    rates(create_session_ip="2/min")
    anon.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    assert _create(api).status_code == 201
    assert _create(anon).status_code == 201
    # when a third request comes from the same address with any key
    _assert_rate_limited(_create(api))
    # then another address still gets through
    assert _create(api, REMOTE_ADDR="127.1.2.3").status_code == 201


def test_status_polling_is_limited_per_ip(api, anon, rates):
    session_id = _create(api).json()["session_id"]
    rates(status_ip="3/min")
    for _ in range(3):
        assert anon.get(f"/session/{session_id}/status").status_code == 200
    _assert_rate_limited(anon.get(f"/session/{session_id}/status"))
    assert anon.get(f"/session/{session_id}/status", REMOTE_ADDR="127.9.9.9").status_code == 200


def test_other_api_calls_are_limited_per_key(api, rates):
    rates(api_key="2/min")
    assert api.get("/account").status_code == 200
    assert api.get("/sessions").status_code == 200
    _assert_rate_limited(api.get("/account"))


def test_the_checkout_simulator_is_limited_per_ip(api, client, rates):
    # given open test sessions and a limit of 2 checkout actions a minute per address
    ids = [_create(api).json()["session_id"] for _ in range(3)]
    rates(checkout_ip="2/min")
    for session_id in ids[:2]:
        response = client.post(f"/checkout/{session_id}/simulate", {"outcome": "failure"})
        assert response.status_code == 302
    # when a third action comes from the same address
    response = client.post(f"/checkout/{ids[2]}/simulate", {"outcome": "failure"})
    # then it is refused in the API's error shape, and that session is untouched
    _assert_rate_limited(response)
    assert PaymentSession.objects.get(pk=ids[2]).status == "created"


def test_the_checkout_simulator_is_limited_per_session(api, client, rates):
    session_id = _create(api).json()["session_id"]
    rates(checkout_session="1/min")
    assert client.post(f"/checkout/{session_id}/simulate", {"outcome": "nonsense"}).status_code == 400
    _assert_rate_limited(client.post(f"/checkout/{session_id}/simulate", {"outcome": "failure"},
                                     REMOTE_ADDR="127.0.0.7"))


@pytest.mark.integration
def test_counters_are_shared_through_redis_in_production(api, settings, rates):
    # given the production cache: Redis
    url = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")
    prefix = f"throttle-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                                   "KEY_PREFIX": prefix}}
    rates(create_session_key="1/min")
    client = redis.Redis.from_url(url)
    try:
        assert _create(api).status_code == 201
        # then the counter is in Redis, where every web process sees it
        assert client.keys(f"{prefix}:*throttle_create_session_key_*")
        _assert_rate_limited(_create(api))
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


@pytest.fixture
def redis_cache(settings):
    """The production cache (Redis) under a prefix of its own, emptied afterwards."""
    url = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")
    prefix = f"throttle-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                                   "KEY_PREFIX": prefix}}
    client = redis.Redis.from_url(url)
    yield client
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_an_api_request_reads_its_key_and_counts_its_limits_in_one_round_trip(api, merchant, redis_cache, rates,
                                                                              monkeypatch):
    rates(create_session_key="2/min")
    assert _create(api).status_code == 201  # the first request looks the key up and caches it
    commands = []
    real = redis.Redis.execute_command

    def counting(self, *args, **options):
        commands.append(args[0])
        return real(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    # when the key's next request comes
    assert _create(api).status_code == 201
    # then the cached key and every limit took one command
    assert commands == ["EVALSHA"]
    # and the limits still hold, counted once per request
    _assert_rate_limited(_create(api))
    assert PaymentSession.objects.count() == 2


def test_a_revoked_key_is_refused_at_once_when_its_lookup_rides_with_the_limits(api, merchant, redis_cache):
    assert _create(api).status_code == 201  # cached
    key_revoke(key=merchant.api_key, actor="test")

    response = _create(api)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"


# ---------------------------------------------------------------- webhooks refuse junk cheaply


def _event_body(session_id: str | None = None) -> str:
    return json.dumps(stripe_provider.test_event(session_id=session_id or str(uuid.uuid4()),
                                                 event_type="payment_intent.succeeded", amount=1, currency="EUR"))


@pytest.mark.parametrize(("name", "make"), [
    ("oversized", lambda: dict(data="{}", content_type="application/json",
                               HTTP_STRIPE_SIGNATURE="t=1,v1=00", CONTENT_LENGTH=str(10 * 1024 * 1024))),
    ("oversized_body", lambda: dict(data=json.dumps({"pad": "x" * (300 * 1024)}), content_type="application/json",
                                    HTTP_STRIPE_SIGNATURE="t=1,v1=00")),
    ("not_json_type", lambda: dict(data="a=b", content_type="application/x-www-form-urlencoded",
                                   HTTP_STRIPE_SIGNATURE="t=1,v1=00")),
    ("not_json_body", lambda: dict(data="{nope", content_type="application/json",
                                   HTTP_STRIPE_SIGNATURE=stripe_provider.sign("{nope"))),
    ("nul_character", lambda: (lambda b: dict(data=b, content_type="application/json",
                                              HTTP_STRIPE_SIGNATURE=stripe_provider.sign(b)))(
        '{"id": "evt_1", "type": "x\\u0000"}')),
    ("lone_surrogate", lambda: (lambda b: dict(data=b, content_type="application/json",
                                               HTTP_STRIPE_SIGNATURE=stripe_provider.sign(b)))(
        '{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"\\ud800": 1}}')),
    ("unsigned", lambda: dict(data=_event_body(), content_type="application/json")),
    ("badly_signed", lambda: dict(data=_event_body(), content_type="application/json",
                                  HTTP_STRIPE_SIGNATURE=stripe_provider.sign("{}"))),
    ("wrong_secret", lambda: (lambda b: dict(data=b, content_type="application/json",
                                             HTTP_STRIPE_SIGNATURE=stripe_provider.sign(b, secret="whsec_other")))(
        _event_body())),
])
def test_webhooks_refuse_junk_before_touching_the_database(db, client, django_assert_num_queries, name, make):
    request = make()
    with django_assert_num_queries(0):
        response = client.post("/webhooks/stripe", **request)
    assert response.status_code in (400, 413, 415), (name, response.status_code)
    assert response.json()["error"]["code"]


@pytest.mark.parametrize(("body", "code"), [
    ({"amount": "1.00", "metadata": {"note": "a\u0000b"}}, "null_characters_not_allowed"),
    ({"amount": "1.00", "description": "\ud800"}, "invalid_json"),
    ({"amount": "1.00", "metadata": {"\udfff": "x"}}, "invalid_json"),
])
def test_text_the_database_cannot_store_is_refused_as_bad_input(api, body, code):
    # JSON may escape NUL and lone surrogates; PostgreSQL refuses them, so must we, with a 400.
    raw = json.dumps(body)
    response = api.post("/create_session", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not PaymentSession.objects.exists()


def test_a_valid_webhook_still_reaches_the_database(api, client):
    session_id = _create(api).json()["session_id"]
    body = _event_body(session_id).replace('"amount": 100', '"amount": 1000').replace(
        '"amount_received": 100', '"amount_received": 1000')
    response = client.post("/webhooks/stripe", body, content_type="application/json; charset=utf-8",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert response.status_code == 200, response.content
    assert PaymentSession.objects.get(pk=session_id).status == "paid"


# ---------------------------------------------------------------- admin login


@pytest.mark.django_db
def test_admin_login_locks_an_address_out_after_repeated_failures(client, settings):
    # given a staff user and a limit of 5 failures
    settings.AXES_FAILURE_LIMIT = 5
    get_user_model().objects.create_superuser("root", "root@example.test", "correct horse battery")
    for attempt in range(5):
        response = client.post("/admin/login/", {"username": "root", "password": f"guess-{attempt}"})
        assert response.status_code in (200, 429)
    # when the right password comes from the same address
    locked = client.post("/admin/login/", {"username": "root", "password": "correct horse battery"})
    # then it is refused all the same
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # while the owner, from another address, can still log in
    other = client.post("/admin/login/", {"username": "root", "password": "correct horse battery"},
                        REMOTE_ADDR="127.20.30.40")
    assert other.status_code == 302


def test_the_redis_counter_allows_the_limit_then_refuses_with_a_wait(settings):
    # given the production cache (Redis) behind a limit of 3 a minute for one client address
    import os
    import uuid

    from django.core.cache.backends.redis import RedisCache

    from core.throttling import StatusIpThrottle

    redis_cache = RedisCache(os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15"),
                             {"KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex}"})
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "status_ip": "3/min"}}

    class Request:
        META = {"REMOTE_ADDR": "192.0.2.7"}

    # when five requests arrive in one window
    throttles = [StatusIpThrottle() for _ in range(5)]
    for throttle in throttles:
        throttle.cache = redis_cache
    allowed = [throttle.allow_request(Request(), None) for throttle in throttles]

    # then three pass, the rest wait for the next window, and the counter expires by itself
    assert allowed == [True, True, True, False, False]
    assert 0 < throttles[-1].wait() <= 60
    client = redis_cache._cache.get_client("", write=False)
    counters = client.keys(f"{redis_cache.key_prefix}*")
    assert counters and all(0 < client.ttl(k) <= 61 for k in counters)
