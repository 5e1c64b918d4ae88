"""Invoices in the dashboard: PDF, resend, revoke, export, all scoped to the merchant."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core import mail

from audit.models import AuditEvent
from invoices_app.models import AccessLink, Invoice
from invoices_app.services.access import access_token
from invoices_app.services.fulfilment import fulfilment_run
from sessions_app.lifecycle import payment_event_apply
from sessions_app.providers import stripe_provider
from sessions_app.services import session_create

INVOICES = "/admin/invoices_app/invoice/"


def paid_and_fulfilled(account, *, amount: str, email: str) -> Invoice:
    session = session_create(account=account, api_key=account.api_key, amount=Decimal(amount),
                             customer_email=email, description="Pro plan")
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                       amount=session.amount, currency=session.currency)
    payment_event_apply(stripe_provider.parse(__import__("json").dumps(event).encode()))
    fulfilment_run(session_id=session.pk)
    return Invoice.objects.get(session=session)


@pytest.fixture
def invoices(merchant, other_merchant):
    other_merchant.invoice_prefix = "OTH"
    other_merchant.save(update_fields=["invoice_prefix"])
    # The buyers' inboxes are test recipients of their merchants: test mode mails no one else.
    merchant.test_email_recipients, other_merchant.test_email_recipients = ["buyer@acme.test"], ["buyer@other.test"]
    merchant.save(update_fields=["test_email_recipients"])
    other_merchant.save(update_fields=["test_email_recipients"])
    mine = paid_and_fulfilled(merchant, amount="49.00", email="buyer@acme.test")
    theirs = paid_and_fulfilled(other_merchant, amount="77.00", email="buyer@other.test")
    mail.outbox.clear()
    return mine, theirs


def test_the_invoice_list_and_search_hold_only_the_merchants_invoices(merchant_client, invoices):
    mine, theirs = invoices

    listing = merchant_client.get(INVOICES).content.decode()
    search = merchant_client.get(INVOICES, {"q": theirs.number}).content.decode()
    by_session = merchant_client.get(INVOICES, {"q": str(theirs.session_id)}).content.decode()
    filters = merchant_client.get(INVOICES, {"currency": "EUR"}).content.decode()

    assert mine.number in listing and theirs.number not in listing
    assert "buyer@other.test" not in listing
    assert "0 results" in search and "0 results" in by_session
    assert theirs.number not in filters


@pytest.mark.parametrize("suffix", ["change/", "pdf/", "history/"])
def test_another_merchants_invoice_pages_are_404(merchant_client, invoices, suffix):
    _, theirs = invoices
    assert merchant_client.get(f"{INVOICES}{theirs.pk}/{suffix}").status_code == 404


def test_resend_and_revoke_of_another_merchants_invoice_change_nothing(merchant_client, invoices):
    _, theirs = invoices

    assert merchant_client.post(f"{INVOICES}{theirs.pk}/resend/").status_code == 404
    assert merchant_client.post(f"{INVOICES}{theirs.pk}/revoke-link/").status_code == 404
    merchant_client.post(INVOICES, {"action": "resend_receipts", "_selected_action": [theirs.pk]})
    merchant_client.post(INVOICES, {"action": "revoke_access_links", "_selected_action": [theirs.pk]})

    assert mail.outbox == []
    assert AccessLink.objects.get(session_id=theirs.session_id).revoked_at is None


def test_the_merchant_downloads_its_invoice_pdf(merchant_client, invoices):
    mine, _ = invoices

    response = merchant_client.get(f"{INVOICES}{mine.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert f"{mine.number}.pdf" in response["Content-Disposition"]


def test_the_merchant_resends_the_receipt(merchant_client, invoices):
    mine, _ = invoices

    response = merchant_client.post(f"{INVOICES}{mine.pk}/resend/", follow=True)

    assert "receipt sent again to buyer@acme.test" in response.content.decode()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["buyer@acme.test"] and mine.number in message.subject
    assert message.attachments[0][0] == f"{mine.number}.pdf"
    assert AuditEvent.objects.filter(action="email.receipt.resent", subject_id=str(mine.pk)).count() == 1


def test_revoking_the_access_link_closes_it_and_stops_resends(merchant_client, client, invoices):
    mine, _ = invoices
    link = AccessLink.objects.get(session_id=mine.session_id)
    assert client.get(f"/access/{access_token(link)}").status_code == 200

    merchant_client.post(f"{INVOICES}{mine.pk}/revoke-link/")

    assert client.get(f"/access/{access_token(link)}").status_code == 410
    assert AuditEvent.objects.filter(action="access_link.revoked", actor="admin:billing@acme.test").exists()
    response = merchant_client.post(f"{INVOICES}{mine.pk}/resend/", follow=True)
    assert "revoked" in response.content.decode()
    assert mail.outbox == []


def test_the_invoice_export_holds_only_the_merchants_invoices_in_minor_units(merchant_client, staff_client,
                                                                             invoices, other_merchant):
    mine, theirs = invoices

    response = merchant_client.get("/admin/export/invoices.csv", {"account": other_merchant.pk})

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["number"] for r in rows] == [mine.number]
    assert rows[0]["gross"] == "49.00"
    all_rows = list(csv.DictReader(io.StringIO(b"".join(
        staff_client.get("/admin/export/invoices.csv").streaming_content).decode())))
    assert {r["number"] for r in all_rows} == {mine.number, theirs.number}


def test_the_session_page_shows_its_invoice_and_key(merchant_client, invoices):
    from keys_app.models import EntitlementKey

    mine, _ = invoices
    key = EntitlementKey.objects.get(session_id=mine.session_id)

    html = merchant_client.get(f"/admin/sessions_app/paymentsession/{mine.session_id}/change/").content.decode()

    assert mine.number in html
    assert key.display in html
    assert 'data-action="session.paid"' in html
