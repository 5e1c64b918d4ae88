"""Refund races on PostgreSQL: real threads, each with its own connection, released together."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from audit.services import audit_verify
from invoices_app.models import CreditNote
from sessions_app.models import PaymentSession, Refund
from sessions_app.signals import refund_succeeded
from sessions_app.tests.refund_support import paid_session
from sessions_app.tests.test_concurrency import run_together

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgresql_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are tested on PostgreSQL only")


def _post_refund(key: str, session_id, body: dict) -> tuple[int, str]:
    # A 500 is an answer here: the test client's exception signal reaches every thread's client.
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_X_API_KEY=key)
    response = client.post(f"/sessions/{session_id}/refunds", body, format="json")
    if response.status_code == 500:
        return 500, "server_error"
    data = response.json()
    return response.status_code, data.get("status") or data["error"]["code"]


def test_ten_concurrent_full_refunds_refund_once(merchant):
    session = paid_session(merchant, amount="100.00")

    results = run_together(10, lambda _: _post_refund(merchant.plaintext_key, session.pk,
                                                       {"reason": "requested_by_customer"}))

    assert Counter(results) == Counter({(201, "succeeded"): 1, (409, "refund_already_processed"): 9})
    session = PaymentSession.objects.get(pk=session.pk)
    assert (str(session.amount_refunded), session.refund_status) == ("100.000", "refunded")
    assert Refund.objects.filter(session=session).count() == 1
    assert CreditNote.objects.count() == 1
    assert audit_verify() == []


def test_partial_refunds_racing_never_add_up_to_more_than_was_paid(merchant):
    session = paid_session(merchant, amount="100.00")

    # ten requests of 30: at most three fit
    results = run_together(10, lambda _: _post_refund(merchant.plaintext_key, session.pk,
                                                       {"amount": "30.00", "reason": "other"}))

    assert Counter(results) == Counter({(201, "succeeded"): 3, (409, "refund_exceeds_available"): 7})
    assert str(PaymentSession.objects.get(pk=session.pk).amount_refunded) == "90.000"


def test_credit_note_numbers_stay_gapless_under_twenty_concurrent_refunds(merchant):
    sessions = [paid_session(merchant, amount="10.00") for _ in range(20)]
    # One refund breaks after its credit note took a number: its transaction, number included, rolls back.
    doomed = sessions[7].pk

    def breaks_one(sender, refund, **kwargs):
        if refund.session_id == doomed:
            raise RuntimeError("the database went away mid-refund")

    refund_succeeded.connect(breaks_one, dispatch_uid="test.breaks_one")
    try:
        results = run_together(20, lambda i: _post_refund(merchant.plaintext_key, sessions[i].pk,
                                                           {"reason": "duplicate"}))
    finally:
        refund_succeeded.disconnect(dispatch_uid="test.breaks_one")

    assert Counter(results) == Counter({(201, "succeeded"): 19, (500, "server_error"): 1})
    numbers = list(CreditNote.objects.order_by("sequence").values_list("sequence", "number", "mode"))
    assert [seq for seq, _, _ in numbers] == list(range(1, 20))
    assert all(number.startswith("TEST-CN-") and mode == "test" for _, number, mode in numbers)
    assert not Refund.objects.filter(session_id=doomed).exists()
    assert audit_verify() == []
