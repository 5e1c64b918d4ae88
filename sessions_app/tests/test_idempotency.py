"""Idempotency-Key on POST /create_session, as Stripe does it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time
from rest_framework.test import APIClient

from sessions_app.models import IdempotencyRecord, PaymentSession

pytestmark = pytest.mark.django_db

BODY = {"amount": "49.00", "currency": "EUR", "description": "Annual plan"}


def _create(client, body=BODY, key="order-1001"):
    return client.post("/create_session", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_same_key_and_body_replay_the_first_response(api):
    # given a first create with a key
    first = _create(api)
    assert first.status_code == 201
    assert not first.has_header("Idempotent-Replayed")

    # when the same request is sent again (a network retry)
    second = _create(api)

    # then the first response comes back, marked as replayed, and no second session exists
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert PaymentSession.objects.count() == 1


def test_key_order_and_number_formatting_do_not_change_the_body(api):
    _create(api, {"currency": "EUR", "amount": "49.00", "description": "Annual plan"})

    replay = _create(api, {"description": "Annual plan", "amount": "49.00", "currency": "EUR"})

    assert replay["Idempotent-Replayed"] == "true"
    assert PaymentSession.objects.count() == 1


def test_the_same_key_with_another_body_is_a_409(api):
    # given a key already used
    _create(api)

    # when it is sent with different parameters
    response = _create(api, {**BODY, "amount": "50.00"})

    # then it is refused and nothing new is stored
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert PaymentSession.objects.count() == 1


def test_keys_are_scoped_per_merchant(api, other_merchant):
    # given the merchant used a key
    first = _create(api)

    # when another merchant uses the same key (with another body, even)
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    theirs = _create(other, {**BODY, "amount": "7.00"})

    # then the other merchant gets its own new session
    assert theirs.status_code == 201
    assert not theirs.has_header("Idempotent-Replayed")
    assert theirs.json()["session_id"] != first.json()["session_id"]
    assert PaymentSession.objects.filter(account=other_merchant).count() == 1


def test_a_key_expires_after_24_hours(api):
    # given a key used a day ago
    start = timezone.now()
    with freeze_time(start):
        first = _create(api)

    # when it is used again just before 24 h, the first response is replayed
    with freeze_time(start + timedelta(hours=23, minutes=59)):
        assert _create(api)["Idempotent-Replayed"] == "true"

    # and after 24 h it is a new request that creates a new session (even with another body)
    with freeze_time(start + timedelta(hours=24, seconds=1)):
        later = _create(api, {**BODY, "amount": "51.00"})
    assert later.status_code == 201
    assert later.json()["session_id"] != first.json()["session_id"]
    assert PaymentSession.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 1


def test_a_request_without_a_key_is_not_deduplicated(api):
    api.post("/create_session", BODY, format="json")
    api.post("/create_session", BODY, format="json")

    assert PaymentSession.objects.count() == 2


def test_a_failed_request_does_not_use_up_the_key(api):
    # given a first attempt that was invalid
    bad = _create(api, {"amount": "-1"})
    assert bad.status_code == 400

    # when it is corrected and retried with the same key
    good = _create(api)

    # then it succeeds
    assert good.status_code == 201
    assert PaymentSession.objects.count() == 1


def test_an_overlong_key_is_refused(api):
    response = _create(api, key="k" * 256)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
    assert PaymentSession.objects.count() == 0


def test_a_key_used_in_test_mode_is_not_replayed_to_a_live_key(api, merchant):
    # given the merchant used a key with its test key
    from keys_app.services import key_issue

    _create(api)
    live = APIClient()
    live.credentials(HTTP_X_API_KEY=key_issue(account=merchant, mode="live").plaintext)

    # when its live key sends the same key and body
    response = _create(live)

    # then the test session is not handed to the live caller
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert PaymentSession.objects.filter(mode="live").count() == 0
