"""A declined card is an attempt; money for a failed session is a late payment, never ignored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import audit_verify
from invoices_app.models import EmailRecord, Fulfilment, Invoice
from sessions_app.models import LatePayment, PaymentSession, Status, WebhookEvent
from sessions_app.services import session_expire
from sessions_app.tests.conftest import stripe_event

# Committed for real: the merchant's email and fulfilment run on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _reload(session) -> PaymentSession:
    return PaymentSession.objects.get(pk=session.pk)


def _late_paid(make_session, deliver, **fields):
    """A session that expired, then a success for it."""
    session = make_session(customer_email="buyer@example.com", **fields)
    session_expire(session_id=session.pk, actor="test")
    success = stripe_event(session, "payment_intent.succeeded")
    response = deliver(success)
    assert response.json()["outcome"] == "late"
    return _reload(session), success


def test_a_decline_then_a_success_pays_the_session(make_session, deliver):
    session = make_session()

    deliver(stripe_event(session, "payment_intent.payment_failed"))
    deliver(stripe_event(session, "payment_intent.succeeded"))

    session = _reload(session)
    assert session.status == Status.PAID
    assert session.payment_attempts_failed == 1


def test_a_success_then_a_decline_stays_paid(make_session, deliver):
    session = make_session()

    deliver(stripe_event(session, "payment_intent.succeeded"))
    response = deliver(stripe_event(session, "payment_intent.payment_failed"))

    assert response.json()["outcome"] == "ignored"
    session = _reload(session)
    assert (session.status, session.payment_attempts_failed) == (Status.PAID, 0)


def test_a_decline_then_expiry_fails_the_session(make_session, deliver, api):
    session = make_session()
    deliver(stripe_event(session, "payment_intent.payment_failed"))

    response = api.post(f"/sessions/{session.pk}/expire")

    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert (_reload(session).status, _reload(session).failure_reason) == (Status.FAILED, "expired")


@pytest.mark.parametrize(("event_type", "reason"), [("payment_intent.canceled", "canceled"),
                                                     ("checkout.session.async_payment_failed", "payment_failed"),
                                                     ("checkout.session.expired", "expired")])
def test_cancellation_a_final_async_failure_and_expiry_end_the_session(make_session, deliver, event_type, reason):
    session = make_session()
    deliver(stripe_event(session, "payment_intent.payment_failed"))

    deliver(stripe_event(session, event_type))

    assert (_reload(session).status, _reload(session).failure_reason) == (Status.FAILED, reason)


def test_repeated_declines_are_each_counted_and_the_api_shows_the_last(make_session, deliver, api):
    session = make_session()
    for _ in range(3):
        deliver(stripe_event(session, "payment_intent.payment_failed"))

    body = api.get(f"/sessions/{session.pk}").json()

    assert body["status"] == "created"
    assert body["payment_attempts_failed"] == 3
    assert body["last_payment_error"]["code"] == "generic_decline"
    assert body["last_payment_error"]["message"] == "Your card was declined."
    assert AuditEvent.objects.filter(action="session.payment_attempt_failed", subject_id=str(session.pk)).count() == 3


def test_a_success_after_expiry_is_kept_shown_audited_and_the_merchant_is_emailed(make_session, deliver, api,
                                                                                 mailoutbox):
    # given a session that expired, when a verified success arrives for it
    session, success = _late_paid(make_session, deliver)

    # then the session stays failed, and the payment is kept with its details
    assert (session.status, session.failure_reason) == (Status.FAILED, "expired")
    assert session.late_payment_at is not None
    late = LatePayment.objects.get(session=session)
    assert (late.amount, late.currency, late.provider) == (session.amount, "EUR", "stripe")
    assert late.provider_reference == success["data"]["object"]["id"]
    assert WebhookEvent.objects.get(event_id=success["id"]).outcome == WebhookEvent.Outcome.LATE

    # and the merchant API shows it
    body = api.get(f"/sessions/{session.pk}").json()
    assert body["status"] == "failed"
    assert body["late_payments"] == [{"amount": "99.990", "currency": "EUR", "provider": "stripe",
                                      "provider_reference": late.provider_reference,
                                      "received_at": late.received_at.isoformat().replace("+00:00", "Z")}]
    assert body["fulfil_anyway"] is None

    # and it is audited, and the merchant was emailed at once (nothing was delivered to the buyer)
    assert AuditEvent.objects.filter(action="session.late_payment", subject_id=str(session.pk)).count() == 1
    assert [m.to for m in mailoutbox] == [["billing@acme.test"]]
    assert "Paid after expiry" in mailoutbox[0].subject
    assert str(session.pk) in mailoutbox[0].body
    assert not Invoice.objects.filter(session=session).exists()
    assert audit_verify() == []


def test_one_late_payment_is_recorded_once_whatever_repeats(make_session, deliver, mailoutbox):
    # given a late payment
    session, success = _late_paid(make_session, deliver)

    # when the same event is redelivered, and another event reports the same payment
    assert deliver(success).json()["outcome"] == "duplicate"
    completed = stripe_event(session, "checkout.session.completed")
    completed["data"]["object"]["payment_intent"] = success["data"]["object"]["id"]
    assert deliver(completed).json()["outcome"] == "late"

    # then there is one late payment, and the merchant heard of it once
    assert LatePayment.objects.filter(session=session).count() == 1
    assert len(mailoutbox) == 1


def test_a_second_different_payment_is_a_second_late_payment(make_session, deliver, mailoutbox):
    session, _ = _late_paid(make_session, deliver)

    deliver(stripe_event(session, "payment_intent.succeeded"))

    assert LatePayment.objects.filter(session=session).count() == 2
    assert len(mailoutbox) == 2
    assert EmailRecord.objects.filter(session=session, kind="late_payment").count() == 2


def test_fulfil_anyway_delivers_once_and_records_who_decided(make_session, deliver, api, mailoutbox, merchant):
    # given a late-paid session, whose buyer's inbox is a test recipient of the merchant
    merchant.test_email_recipients = ["buyer@example.com"]
    merchant.save(update_fields=["test_email_recipients"])
    session, success = _late_paid(make_session, deliver)
    mailoutbox.clear()

    # when the merchant decides to deliver it, twice
    first = api.post(f"/sessions/{session.pk}/fulfil_anyway")
    second = api.post(f"/sessions/{session.pk}/fulfil_anyway")

    # then it is delivered once: an invoice naming the late payment, the receipt, the merchant's notice
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "failed"
    assert first.json()["fulfil_anyway"]["by"].startswith("api_key:")
    assert second.json()["fulfil_anyway"] == first.json()["fulfil_anyway"]
    invoice = Invoice.objects.get(session=session)
    assert invoice.payment_reference == success["data"]["object"]["id"]
    assert Fulfilment.objects.get(pk=session.pk).completed_at is not None
    assert sorted(m.to[0] for m in mailoutbox) == ["billing@acme.test", "buyer@example.com"]
    assert AuditEvent.objects.filter(action="session.fulfil_anyway", subject_id=str(session.pk)).count() == 1
    assert _reload(session).status == Status.FAILED


def test_fulfil_anyway_is_refused_without_a_late_payment_and_for_another_merchant(make_session, deliver, api,
                                                                                  other_merchant):
    # a paid session and an expired one with no late payment: 409
    paid = make_session()
    deliver(stripe_event(paid))
    expired = make_session()
    session_expire(session_id=expired.pk, actor="test")
    for session in (paid, expired):
        response = api.post(f"/sessions/{session.pk}/fulfil_anyway")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "no_late_payment"

    # another merchant's late-paid session: 404, and nothing happens
    theirs, _ = _late_paid(make_session, deliver, account=other_merchant)
    assert api.post(f"/sessions/{theirs.pk}/fulfil_anyway").status_code == 404
    assert _reload(theirs).fulfil_anyway_at is None

    # and an entitlement of nothing: a bad id
    assert APIClient().post(f"/sessions/{theirs.pk}/fulfil_anyway").status_code == 401
