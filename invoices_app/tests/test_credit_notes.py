"""Credit notes: issued for each succeeded refund, rendered, emailed, listed on the access page;
and what the refund does to the key the payment bought."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from audit.services import audit_verify
from invoices_app.models import AccessLink, CreditNote, EmailRecord, Invoice
from invoices_app.services.access import access_token
from invoices_app.services.fulfilment import fulfilment_run
from keys_app.models import EntitlementKey
from keys_app.services import account_update
from sessions_app.tests.refund_support import paid_session, refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def fulfilled(merchant):
    def make(**kwargs):
        account_update(account=merchant, actor="test", vat_rate=Decimal("19"), invoice_prefix="ACME")
        session = paid_session(merchant, amount="119.00", **kwargs)
        fulfilment_run(session_id=session.pk)
        return session

    return make


def _refund(api, session, capture, body):
    with capture(execute=True):
        response = refund(api, session, body)
    assert response.status_code == 201, response.content
    return response.json()


def _verify(api, session) -> str:
    key = EntitlementKey.objects.get(session_id=session.pk)
    return key.verdict(mode=key.mode)


def test_a_credit_note_pdf_names_the_invoice_the_amount_and_the_reason_and_is_emailed(
        fulfilled, api, mailoutbox, django_capture_on_commit_callbacks, client):
    session = fulfilled()
    invoice = Invoice.objects.get(session=session)
    invoice_pdf_before = invoice.pdf_sha256
    mailoutbox.clear()

    body = _refund(api, session, django_capture_on_commit_callbacks, {"amount": "59.50", "reason": "duplicate"})

    note = CreditNote.objects.get(refund_id=body["id"])
    year = timezone.now().year
    assert note.number == f"TEST-CN-{year}-00001" and note.invoice_number == invoice.number
    assert (note.net, note.vat, note.gross) == (Decimal("50.00"), Decimal("9.50"), Decimal("59.50"))
    # the PDF, read back
    [mail] = mailoutbox
    assert mail.to == ["buyer@example.test"] and note.number in mail.subject and mail.subject.startswith("[TEST]")
    assert "TEST MODE" in mail.body and "/access/" in mail.body
    name, pdf, kind = mail.attachments[0]
    assert (name, kind) == (f"{note.number}.pdf", "application/pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in (note.number, invoice.number, "59.50 EUR", "Duplicate payment", "TEST MODE", "Acme GmbH"):
        assert expected in text, expected
    assert EmailRecord.objects.filter(kind="credit_note", reference=str(note.pk)).exclude(sent_at=None).count() == 1
    # the invoice itself never changes, and stays issued after a partial refund
    invoice.refresh_from_db()
    assert (invoice.pdf_sha256, invoice.status) == (invoice_pdf_before, Invoice.Status.ISSUED)
    # the access link still works and lists the credit note with its PDF
    link = AccessLink.objects.get(session=session)
    page = client.get(f"/access/{access_token(link)}")
    assert page.status_code == 200
    assert note.number in page.content.decode() and "Partially refunded" in page.content.decode()
    download = client.get(f"/access/{access_token(link)}/credit-notes/{note.number}.pdf")
    assert download.status_code == 200 and download.content == pdf
    assert client.get(f"/access/{access_token(link)}/credit-notes/CN-0.pdf").status_code == 404
    assert audit_verify() == []


def test_a_full_refund_revokes_the_key_and_a_partial_one_does_not(fulfilled, api,
                                                                   django_capture_on_commit_callbacks, client):
    partial, full = fulfilled(), fulfilled()

    _refund(api, partial, django_capture_on_commit_callbacks, {"amount": "100.00", "reason": "other"})
    _refund(api, full, django_capture_on_commit_callbacks, {"reason": "requested_by_customer"})

    assert _verify(api, partial) == "valid"
    assert _verify(api, full) == "refunded"
    assert Invoice.objects.get(session=full).status == Invoice.Status.REFUNDED
    assert Invoice.objects.get(session=partial).status == Invoice.Status.ISSUED
    # the rest of the partial one completes the refund, and then the key goes too
    _refund(api, partial, django_capture_on_commit_callbacks, {"reason": "other"})
    assert _verify(api, partial) == "refunded"
    # the access link stays valid for the credit notes
    link = AccessLink.objects.get(session=full)
    assert client.get(f"/access/{access_token(link)}").status_code == 200
    assert list(CreditNote.objects.order_by("sequence").values_list("sequence", flat=True)) == [1, 2, 3]


def test_revoke_key_false_keeps_the_key_and_the_merchant_default_can_be_off(fulfilled, api, merchant,
                                                                             django_capture_on_commit_callbacks):
    kept = fulfilled()
    _refund(api, kept, django_capture_on_commit_callbacks, {"reason": "other", "revoke_key": False})
    assert _verify(api, kept) == "valid"

    assert api.patch("/account", {"refund_revokes_key": False}, format="json").status_code == 200
    default_off, forced = fulfilled(), fulfilled()
    _refund(api, default_off, django_capture_on_commit_callbacks, {"reason": "other"})
    _refund(api, forced, django_capture_on_commit_callbacks, {"reason": "other", "revoke_key": True})
    assert _verify(api, default_off) == "valid"
    assert _verify(api, forced) == "refunded"


def test_live_credit_notes_and_invoices_are_numbered_apart_from_test_ones(fulfilled, api, merchant,
                                                                          django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    from keys_app.services import key_issue

    live_api = APIClient()
    live_api.credentials(HTTP_X_API_KEY=key_issue(account=merchant, mode="live").plaintext)
    test_session, live_session = fulfilled(), paid_session(merchant, mode="live")
    fulfilment_run(session_id=live_session.pk)

    _refund(api, test_session, django_capture_on_commit_callbacks, {"amount": "1.00", "reason": "other"})
    live_refund = live_api.post(f"/sessions/{live_session.pk}/refunds", {"amount": "1.00", "reason": "other"},
                                format="json")
    # a live card payment is refunded by Stripe, never by the simulator: without a key it fails
    assert live_refund.status_code == 201 and live_refund.json()["status"] == "failed"
    assert live_refund.json()["failure_reason"] == "provider_not_configured"

    year = timezone.now().year
    assert Invoice.objects.get(session=live_session).number == f"ACME-{year}-00001"
    assert Invoice.objects.get(session=test_session).number == f"TEST-ACME-{year}-00001"
    assert list(CreditNote.objects.values_list("number", flat=True)) == [f"TEST-CN-{year}-00001"]


def test_a_key_issued_after_a_full_refund_is_born_refunded(merchant, api, django_capture_on_commit_callbacks):
    # a test payment refunded before fulfilment reached the key
    session = paid_session(merchant, amount="10.00")
    _refund(api, session, django_capture_on_commit_callbacks, {"reason": "duplicate"})

    fulfilment_run(session_id=session.pk)

    assert _verify(api, session) == "refunded"


def test_the_safety_net_delivers_a_credit_note_whose_task_was_lost(merchant, api, mailoutbox):
    from datetime import timedelta

    from invoices_app import handoff

    session = paid_session(merchant, amount="10.00")
    # the refund commits, and its delivery task is lost (no on-commit callbacks run here)
    refund(api, session, {"reason": "other"})
    note = CreditNote.objects.get()
    assert note.pdf_name == "" and not mailoutbox

    handoff.fulfilment_safety_net(now=timezone.now() + timedelta(hours=1))

    note.refresh_from_db()
    assert note.pdf_name and note.emailed_at is not None
    assert [m for m in mailoutbox if note.number in m.subject]


def test_succeeded_refunds_are_read_by_account_mode_currency_and_day(merchant, api):
    from datetime import timedelta

    from sessions_app.refunds.selectors import refunds_succeeded_by_day

    for amount in ("10.00", "5.50"):
        refund(api, paid_session(merchant, amount=amount), {"reason": "other"})
    now = timezone.now()

    rows = refunds_succeeded_by_day(account_id=merchant.pk, mode="test", start=now - timedelta(days=1),
                                    end=now + timedelta(days=1))

    assert [(r["day"], r["currency"], r["amount"], r["count"]) for r in rows] == [
        (now.date(), "EUR", Decimal("15.500"), 2)]
    assert refunds_succeeded_by_day(account_id=merchant.pk, mode="live", start=now - timedelta(days=1),
                                    end=now + timedelta(days=1)) == []
