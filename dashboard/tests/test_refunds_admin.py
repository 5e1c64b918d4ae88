"""The dashboard's refunds: the Refund action with its confirmation, the list, the CSV export."""

from __future__ import annotations

import csv
import io

import pytest

from sessions_app.models import PaymentSession, Refund
from sessions_app.tests.refund_support import paid_session

pytestmark = pytest.mark.django_db

SESSIONS = "/admin/sessions_app/paymentsession/"
REFUNDS = "/admin/sessions_app/refund/"


def _action(client, session, **fields):
    return client.post(SESSIONS, {"action": "refund_session", "_selected_action": [str(session.pk)], **fields})


def test_the_refund_action_shows_what_will_happen_and_refunds_only_when_confirmed(merchant, merchant_client):
    session = paid_session(merchant, amount="80.00")

    form = _action(merchant_client, session)
    assert form.status_code == 200 and "Show what will happen" in form.content.decode()

    preview = _action(merchant_client, session, amount="80.00", reason="duplicate", revoke_key="")
    text = preview.content.decode()
    assert 'data-testid="refund-plan"' in text and "a full refund" in text
    assert "(it verifies as refunded)" in text and "credit note" in text
    assert not Refund.objects.exists()

    too_much = _action(merchant_client, session, amount="80.01", reason="duplicate")
    assert "At most 80.00 EUR can be refunded" in too_much.content.decode()

    done = _action(merchant_client, session, amount="30.00", reason="duplicate", revoke_key="no", confirm="yes")
    assert done.status_code == 302
    refund = Refund.objects.get()
    assert (str(refund.amount), refund.origin, refund.revoke_key, refund.status) == (
        "30.000", "dashboard", False, "succeeded")
    assert refund.actor.startswith("admin:")
    assert PaymentSession.objects.get(pk=session.pk).refund_status == "partially_refunded"
    page = merchant_client.get(f"{SESSIONS}{session.pk}/change/").content.decode()
    assert 'data-testid="refund"' in page and "Partially refunded" in page


def test_the_refund_list_and_csv_are_scoped_per_merchant(merchant, other_merchant, merchant_client, api):
    mine = paid_session(merchant, amount="10.00")
    theirs = paid_session(other_merchant, amount="20.00")
    from sessions_app.refunds.services import refund_create

    for session in (mine, theirs):
        refund_create(account=session.account, session_id=session.pk, amount=None, reason="other", actor="test")

    listing = merchant_client.get(REFUNDS).content.decode()
    assert str(mine.refunds.get().pk) in listing and str(theirs.refunds.get().pk) not in listing
    assert merchant_client.get(f"{REFUNDS}{theirs.refunds.get().pk}/change/").status_code == 404

    response = merchant_client.get("/admin/export/refunds.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:6] == ["refund_id", "created_at", "succeeded_at", "status", "mode", "amount"]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (row["refund_id"], row["mode"], row["amount"], row["status"]) == (
        str(mine.refunds.get().pk), "test", "10.00", "succeeded")
    assert row["credit_note_number"].startswith("TEST-CN-")
    assert merchant_client.get("/admin/export/refunds.csv?mode=live").getvalue().decode().count("\n") == 1
