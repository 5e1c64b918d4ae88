"""POST /webhooks/stripe verifies Stripe-Signature before anything is stored."""

from __future__ import annotations

import json
import time

import pytest

from audit.models import AuditEvent
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.tests.conftest import stripe_event

pytestmark = pytest.mark.django_db

OLD_SECRET = "whsec_old_0123456789abcdefghijklmnop"
NEW_SECRET = "whsec_new_abcdefghijklmnop0123456789"


@pytest.fixture
def session(make_session):
    return make_session()


@pytest.fixture
def nothing_stored(session):
    """Assert, after the test's request, that no event, audit row or state change came of it."""
    audit_before = AuditEvent.objects.count()
    yield
    assert WebhookEvent.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before
    assert PaymentSession.objects.get(pk=session.pk).status == Status.CREATED


def _assert_rejected(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


def test_it_accepts_a_valid_signature(session, deliver):
    response = deliver(stripe_event(session))

    assert response.status_code == 200
    assert response.json()["outcome"] == "processed"
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID
    assert WebhookEvent.objects.count() == 1


def test_it_rejects_a_signature_made_with_another_secret(session, deliver, nothing_stored):
    response = deliver(stripe_event(session), secret="whsec_someone_else_entirely_000000")

    _assert_rejected(response, 400, "signature_invalid")


def test_it_rejects_a_tampered_body(session, deliver, nothing_stored):
    # given a correctly signed event
    body = json.dumps(stripe_event(session))
    signature = stripe_provider.sign(body)

    # when its body is changed in transit (here: the amount) and the signature kept
    tampered = body.replace('"amount": 9999', '"amount": 1')
    assert tampered != body
    response = deliver(tampered, signature=signature)

    # then it is rejected
    _assert_rejected(response, 400, "signature_invalid")


@pytest.mark.parametrize("offset", [-301, -3600, 310, 3600], ids=["stale", "stale-hour", "future", "future-hour"])
def test_it_rejects_a_timestamp_outside_the_tolerance(session, deliver, nothing_stored, offset):
    # The clock is read again when the request is checked, later than here: a future
    # timestamp needs some margin on top of the tolerance (int() also rounds it down).
    response = deliver(stripe_event(session), timestamp=int(time.time()) + offset)

    _assert_rejected(response, 400, "signature_timestamp_out_of_range")


@pytest.mark.parametrize("offset", [-240, 240])
def test_it_accepts_a_timestamp_inside_the_tolerance(session, deliver, offset):
    response = deliver(stripe_event(session), timestamp=int(time.time()) + offset)

    assert response.status_code == 200


def test_it_rejects_a_missing_signature_header(session, deliver, nothing_stored):
    response = deliver(stripe_event(session), sign=False)

    _assert_rejected(response, 400, "signature_missing")


@pytest.mark.parametrize("header", [
    "garbage",
    "t=notanumber,v1=abc",
    "t={now}",
    "v1=deadbeef",
    "t=,v1=",
])
def test_it_rejects_a_malformed_signature_header(session, deliver, nothing_stored, header):
    response = deliver(stripe_event(session), signature=header.format(now=int(time.time())))

    _assert_rejected(response, 400, "signature_malformed")


def test_it_rejects_a_well_formed_header_whose_signature_is_wrong(session, deliver, nothing_stored):
    response = deliver(stripe_event(session), signature=f"t={int(time.time())},v1={'0' * 64}")

    _assert_rejected(response, 400, "signature_invalid")


def test_it_accepts_the_old_and_the_new_secret_during_a_rotation(session, make_session, deliver, settings):
    # given two secrets configured (STRIPE_WEBHOOK_SECRET=new,old)
    settings.STRIPE_TEST_WEBHOOK_SECRETS = [NEW_SECRET, OLD_SECRET]
    other = make_session()

    # when one event is signed with the old secret and one with the new
    signed_old = deliver(stripe_event(session), secret=OLD_SECRET)
    signed_new = deliver(stripe_event(other), secret=NEW_SECRET)

    # then both are accepted
    assert (signed_old.status_code, signed_new.status_code) == (200, 200)
    assert PaymentSession.objects.filter(status=Status.PAID).count() == 2


def test_it_accepts_a_header_carrying_several_signatures(session, deliver, settings):
    # given Stripe signing with both secrets during its own rotation
    settings.STRIPE_TEST_WEBHOOK_SECRETS = [NEW_SECRET]
    body = json.dumps(stripe_event(session))
    ts = int(time.time())
    old = stripe_provider.sign(body, OLD_SECRET, ts).split(",")[1]
    new = stripe_provider.sign(body, NEW_SECRET, ts).split(",")[1]

    response = deliver(body, signature=f"t={ts},{old},{new}")

    assert response.status_code == 200


def test_it_rejects_a_secret_once_it_is_removed(session, deliver, settings, nothing_stored):
    # given the rotation finished: only the new secret is configured
    settings.STRIPE_TEST_WEBHOOK_SECRETS = [NEW_SECRET]

    response = deliver(stripe_event(session), secret=OLD_SECRET)

    _assert_rejected(response, 400, "signature_invalid")


def test_it_answers_503_when_no_secret_is_configured(session, deliver, settings, nothing_stored):
    settings.STRIPE_TEST_WEBHOOK_SECRETS = []

    response = deliver(stripe_event(session), secret=NEW_SECRET)

    _assert_rejected(response, 503, "webhook_not_configured")


def test_it_rejects_a_signed_body_that_is_not_json(session, deliver, nothing_stored):
    response = deliver("this is { not json")

    _assert_rejected(response, 400, "invalid_json")


@pytest.mark.parametrize("body", ['["an", "array"]', '{"no_type": true}', '{"type": 42}'])
def test_it_rejects_signed_json_that_is_not_an_event(session, deliver, nothing_stored, body):
    response = deliver(body)

    _assert_rejected(response, 400, "event_invalid")


def test_it_rejects_a_body_that_is_not_utf8(session, deliver, nothing_stored):
    response = deliver(b"\xff\xfe{}", signature=f"t={int(time.time())},v1={'0' * 64}")

    # Refused by the cheap guard before the signature is even checked.
    _assert_rejected(response, 400, "invalid_json")


def test_it_rejects_an_oversized_body_with_413(session, deliver, nothing_stored):
    # given a signed event padded past 256 KiB
    event = stripe_event(session)
    event["data"]["object"]["description"] = "x" * (stripe_provider.MAX_BODY_BYTES + 1)

    response = deliver(event)

    _assert_rejected(response, 413, "body_too_large")


def test_it_accepts_only_post(client):
    assert client.get("/webhooks/stripe").status_code == 405
