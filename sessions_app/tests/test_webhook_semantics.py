"""What each verified Stripe event does to a session, and what is stored and audited."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from core import errors
from core.http import domain_status
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.tests.conftest import stripe_event
from sessions_app.webhooks import stripe_webhook_receive

# Every test on both write paths (the one-statement fast path and the locked ORM path).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("write_path")]


def _reload(session) -> PaymentSession:
    return PaymentSession.objects.get(pk=session.pk)


@pytest.mark.parametrize(("event_type", "status"), [
    ("payment_intent.processing", Status.PENDING),
    ("payment_intent.succeeded", Status.PAID),
    ("checkout.session.completed", Status.PAID),
    ("payment_intent.canceled", Status.FAILED),
    ("checkout.session.expired", Status.FAILED),
    ("checkout.session.async_payment_failed", Status.FAILED),
])
def test_each_handled_event_type_moves_an_open_session(make_session, deliver, event_type, status):
    # given an open session
    session = make_session()

    # when Stripe reports the event
    response = deliver(stripe_event(session, event_type))

    # then the session moves, the event is stored as processed, and the change is audited
    assert response.status_code == 200
    assert response.json()["outcome"] == "processed"
    assert _reload(session).status == status
    stored = WebhookEvent.objects.get()
    assert (stored.event_type, stored.outcome, stored.session_id) == (event_type, "processed", session.pk)
    assert AuditEvent.objects.filter(action=f"session.{status}", subject_id=str(session.pk)).count() == 1


def test_a_payment_records_provider_reference_and_time(make_session, deliver):
    session = make_session()
    event = stripe_event(session)

    deliver(event)

    session = _reload(session)
    assert session.provider == "stripe"
    assert session.provider_reference == event["data"]["object"]["id"]
    assert session.paid_at is not None


def test_a_declined_attempt_records_the_decline_and_leaves_the_session_open(make_session, deliver):
    session = make_session()

    response = deliver(stripe_event(session, "payment_intent.payment_failed"))

    assert response.json()["outcome"] == "processed"
    session = _reload(session)
    assert session.status == Status.CREATED
    assert (session.payment_attempts_failed, session.last_payment_error_code) == (1, "generic_decline")
    assert session.last_payment_error_message == "Your card was declined."
    assert session.failure_reason == ""
    assert AuditEvent.objects.filter(action="session.payment_attempt_failed", subject_id=str(session.pk)).count() == 1


def test_an_expired_checkout_session_fails_with_reason_expired(make_session, deliver):
    session = make_session()

    deliver(stripe_event(session, "checkout.session.expired"))

    assert _reload(session).failure_reason == "expired"


def test_a_pending_session_can_still_be_paid(make_session, deliver):
    session = make_session()
    deliver(stripe_event(session, "payment_intent.processing"))

    deliver(stripe_event(session, "payment_intent.succeeded"))

    assert _reload(session).status == Status.PAID


def test_a_completed_checkout_that_is_not_yet_paid_only_makes_the_session_pending(make_session, deliver):
    # given a checkout.session.completed whose payment is still on its way (e.g. a bank debit)
    session = make_session()
    event = stripe_event(session, "checkout.session.completed")
    event["data"]["object"]["payment_status"] = "unpaid"

    deliver(event)

    assert _reload(session).status == Status.PENDING


def test_it_finds_the_session_by_client_reference_id(make_session, deliver):
    # given a checkout.session event that carries the session only as client_reference_id
    session = make_session()
    event = stripe_event(session, "checkout.session.completed")
    event["data"]["object"]["metadata"] = {}

    deliver(event)

    assert _reload(session).status == Status.PAID


def test_it_finds_the_session_by_metadata_session_id(make_session, deliver):
    session = make_session()
    event = stripe_event(session, "payment_intent.succeeded")
    assert "client_reference_id" not in event["data"]["object"]

    deliver(event)

    assert _reload(session).status == Status.PAID


@pytest.mark.parametrize(("field", "value", "detail"), [
    ("amount_received", 1, "amount_mismatch"),
    ("currency", "usd", "currency_mismatch"),
])
def test_an_amount_or_currency_mismatch_is_recorded_and_does_not_pay(make_session, deliver, field, value, detail):
    # given an event whose amount or currency differs from the session's
    session = make_session()
    event = stripe_event(session)
    event["data"]["object"][field] = value

    # when it arrives
    response = deliver(event)

    # then it is answered 200 (Stripe must not retry), stored as rejected, audited, and nothing is paid
    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"
    stored = WebhookEvent.objects.get()
    assert stored.outcome == WebhookEvent.Outcome.REJECTED
    assert stored.error.startswith(detail)
    audit = AuditEvent.objects.get(action="webhook.rejected")
    assert audit.subject_id == str(session.pk)
    assert audit.data["detail"].startswith(detail)
    assert _reload(session).status == Status.CREATED


def test_a_checkout_total_that_differs_does_not_pay(make_session, deliver):
    session = make_session()
    event = stripe_event(session, "checkout.session.completed")
    event["data"]["object"]["amount_total"] = 100

    assert deliver(event).json()["outcome"] == "rejected"
    assert _reload(session).status == Status.CREATED


def test_a_zero_decimal_currency_is_compared_in_its_own_minor_units(make_session, deliver):
    # given a JPY session of 1500 yen, and Stripe reporting 1500 (JPY has no minor unit)
    session = make_session(amount="1500", currency="JPY")
    event = stripe_event(session)
    assert event["data"]["object"]["amount"] == 1500

    deliver(event)

    assert _reload(session).status == Status.PAID


@pytest.mark.parametrize(("session_mode", "livemode"), [("test", True), ("live", False)])
def test_a_livemode_mismatch_is_rejected(make_session, deliver, session_mode, livemode):
    # given a session of one mode and an event of the other
    session = make_session(mode=session_mode)
    event = stripe_event(session, livemode=livemode)

    response = deliver(event)

    assert response.json()["outcome"] == "rejected"
    assert WebhookEvent.objects.get().error == "livemode_mismatch"
    assert _reload(session).status == Status.CREATED


def test_a_replay_answers_200_and_does_nothing_more(make_session, deliver):
    # given an event already processed
    session = make_session()
    event = stripe_event(session)
    deliver(event)
    audit_rows = AuditEvent.objects.count()

    # when Stripe delivers it again (a retry, freshly signed)
    response = deliver(event)

    # then it is acknowledged and nothing more is stored or audited
    assert response.status_code == 200
    assert response.json()["outcome"] == "duplicate"
    assert WebhookEvent.objects.count() == 1
    assert AuditEvent.objects.count() == audit_rows


def test_a_replay_of_a_rejected_event_is_still_a_duplicate(make_session, deliver):
    session = make_session()
    event = stripe_event(session)
    event["data"]["object"]["amount_received"] = 1
    deliver(event)

    assert deliver(event).json()["outcome"] == "duplicate"
    assert WebhookEvent.objects.count() == 1


def test_an_event_for_a_terminal_session_is_stored_and_ignored(make_session, deliver):
    # given a failed session
    session = make_session()
    deliver(stripe_event(session, "checkout.session.expired"))

    # when a pending event arrives late
    response = deliver(stripe_event(session, "payment_intent.processing"))

    # then it is stored as ignored, audited as such, and the session stays failed
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert WebhookEvent.objects.filter(outcome=WebhookEvent.Outcome.IGNORED, session=session).count() == 1
    assert AuditEvent.objects.filter(action="webhook.ignored", subject_id=str(session.pk)).count() == 1
    assert _reload(session).status == Status.FAILED


def test_an_unknown_event_type_is_stored_and_answered_200(make_session, deliver):
    session = make_session()

    response = deliver(stripe_event(session, "customer.created"))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert WebhookEvent.objects.get().event_type == "customer.created"
    assert _reload(session).status == Status.CREATED


@pytest.mark.parametrize("ref", ["7c7b8a5e-59a4-4c1f-9f32-2f0e8d1f4c11", "not-a-uuid", None])
def test_an_event_for_an_unknown_session_is_stored_unmatched(deliver, ref):
    # given an event whose session does not exist (or whose reference is no session id at all)
    event = stripe_event("7c7b8a5e-59a4-4c1f-9f32-2f0e8d1f4c11")
    event["data"]["object"]["metadata"] = {"session_id": ref} if ref else {}

    response = deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "unmatched"
    stored = WebhookEvent.objects.get()
    assert (stored.outcome, stored.session_id) == (WebhookEvent.Outcome.UNMATCHED, None)
    assert AuditEvent.objects.filter(action="webhook.unmatched").count() == 1


def test_the_seeds_own_manual_payload_pays_a_session_and_is_a_duplicate_the_second_time(make_session, deliver):
    # given a session and the seed's hand-written payload: no event id, no amount, no currency
    session = make_session()
    body = json.dumps({"type": "payment_intent.succeeded",
                       "data": {"object": {"id": "pi_123", "metadata": {"session_id": str(session.pk)}}}})

    # when it is posted, signed
    first = deliver(body)

    # then the session is paid
    assert first.status_code == 200, first.content
    assert first.json()["outcome"] == "processed"
    session = _reload(session)
    assert (session.status, session.provider_reference) == (Status.PAID, "pi_123")

    # and the very same body again is recognised as a duplicate
    second = deliver(body)
    assert second.json()["outcome"] == "duplicate"
    assert WebhookEvent.objects.count() == 1


def test_the_session_paid_signal_is_sent_once_on_commit(make_session, deliver, django_capture_on_commit_callbacks):
    from sessions_app.signals import session_paid

    received = []

    def listener(sender, session_id, **kwargs):
        received.append(session_id)

    session_paid.connect(listener)
    try:
        session = make_session()
        event = stripe_event(session)
        with django_capture_on_commit_callbacks(execute=True):
            deliver(event)
            deliver(event)
            deliver(stripe_event(session))
    finally:
        session_paid.disconnect(listener)

    assert received == [session.pk]


def test_an_oversized_body_is_refused_even_without_a_content_length(make_session):
    # given a body past the limit handed straight to the receiver (chunked upload: no Content-Length)
    body = json.dumps(stripe_event(make_session(), description="x" * stripe_provider.MAX_BODY_BYTES))

    with pytest.raises(errors.TooLarge) as excinfo:
        stripe_webhook_receive(body=body.encode(), signature_header=stripe_provider.sign(body))

    assert (domain_status(excinfo.value), excinfo.value.code) == (413, "body_too_large")
    assert WebhookEvent.objects.count() == 0
