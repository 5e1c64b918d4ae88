"""Refunds through the API: full, partial, beyond what was paid, idempotent, on the books."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from audit.services import audit_verify
from events_app.models import Event
from invoices_app.models import CreditNote
from sessions_app.models import Refund, Status
from sessions_app.tests.refund_support import paid_session, refund

pytestmark = pytest.mark.django_db


def test_a_full_refund_without_an_amount_gives_back_everything_and_the_session_stays_paid(api, merchant, anon):
    session = paid_session(merchant, amount="100.00")

    response = refund(api, session)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["amount"], body["status"], body["reason"], body["mode"]) == ("100.00", "succeeded",
                                                                              "requested_by_customer", "test")
    assert body["provider_reference"].startswith("re_simulated_")
    session.refresh_from_db()
    assert session.status == Status.PAID
    assert (session.amount_refunded, session.refund_status) == (Decimal("100.000"), "refunded")
    detail = api.get(f"/sessions/{session.pk}").json()
    assert (detail["status"], detail["amount_refunded"], detail["refund_status"]) == ("paid", "100.00", "refunded")
    assert anon.get(f"/session/{session.pk}/status").json()["refund_status"] == "refunded"
    # the merchant's events and the audit trail have each step
    assert list(Event.objects.filter(object_id=body["id"]).order_by("created_at").values_list("type", flat=True)) \
        == ["refund.created", "refund.succeeded"]
    assert {"refund.created", "refund.succeeded", "credit_note.issued"} <= set(
        AuditEvent.objects.values_list("action", flat=True))
    assert audit_verify() == []
    # and a credit note in the test series
    note = CreditNote.objects.get(refund_id=body["id"])
    assert note.number.startswith("TEST-CN-") and note.number.endswith("-00001")
    assert note.gross == Decimal("100.000")


def test_two_partial_refunds_then_a_third_beyond_what_was_paid_is_refused(api, merchant):
    session = paid_session(merchant, amount="100.00")

    first = refund(api, session, {"amount": "30.00", "reason": "requested_by_customer"})
    second = refund(api, session, {"amount": "50.00", "reason": "duplicate"})
    session.refresh_from_db()
    assert (session.amount_refunded, session.refund_status) == (Decimal("80.000"), "partially_refunded")

    third = refund(api, session, {"amount": "20.01", "reason": "other"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert third.status_code == 409
    assert third.json()["error"]["code"] == "refund_exceeds_available"
    # the rest still fits, and after it nothing does
    assert refund(api, session, {"amount": "20.00", "reason": "other"}).status_code == 201
    again = refund(api, session)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "refund_already_processed")
    assert sorted(CreditNote.objects.values_list("sequence", flat=True)) == [1, 2, 3]
    listed = api.get(f"/sessions/{session.pk}/refunds").json()["results"]
    assert [r["amount"] for r in listed] == ["20.00", "50.00", "30.00"]


def test_an_idempotent_retry_returns_the_first_refund_and_refunds_once(api, merchant):
    session = paid_session(merchant, amount="40.00")
    body = {"amount": "10.00", "reason": "requested_by_customer"}

    first = refund(api, session, body, HTTP_IDEMPOTENCY_KEY="refund-1")
    retry = refund(api, session, body, HTTP_IDEMPOTENCY_KEY="refund-1")
    other = refund(api, session, {**body, "amount": "11.00"}, HTTP_IDEMPOTENCY_KEY="refund-1")

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_key_reused")
    assert Refund.objects.filter(session=session).count() == 1


def test_bad_refund_input_is_a_clear_4xx(api, merchant, other_merchant, make_session):
    session = paid_session(merchant, amount="10.00")
    open_session = make_session()

    cases = {
        "amount_precision": refund(api, session, {"amount": "1.001", "reason": "other"}),
        "reason": refund(api, session, {"amount": "1.00", "reason": "because"}),
        "parameter_unknown": refund(api, session, {"reason": "other", "extra": 1}),
        "session_not_refundable": refund(api, open_session),
    }
    assert cases["amount_precision"].status_code == 400
    assert cases["amount_precision"].json()["error"]["code"] == "amount_precision"
    assert cases["reason"].status_code == 400
    assert cases["parameter_unknown"].json()["error"]["code"] == "parameter_unknown"
    assert cases["session_not_refundable"].status_code == 409
    assert cases["session_not_refundable"].json()["error"]["code"] == "session_not_refundable"
    assert refund(api, session, {"amount": "0", "reason": "other"}).status_code == 400
    # another merchant's session and refund are not found
    from rest_framework.test import APIClient

    stranger = APIClient()
    stranger.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    assert refund(stranger, session).status_code == 404
    mine = refund(api, session, {"amount": "1.00", "reason": "other"}).json()
    assert stranger.get(f"/refunds/{mine['id']}").status_code == 404
    assert api.get(f"/refunds/{mine['id']}").json()["amount"] == "1.00"
    assert api.get("/refunds/not-a-uuid").status_code == 404


def test_a_test_key_never_refunds_a_live_payment(api, merchant):
    live = paid_session(merchant, amount="10.00", mode="live")

    response = refund(api, live)

    assert (response.status_code, response.json()["error"]["code"]) == (403, "mode_mismatch")
    assert not Refund.objects.exists()
