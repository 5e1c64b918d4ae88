"""Test mode mails only the merchant: its own address and its test_email_recipients.

A real SMTP server (aiosmtpd) on 127.0.0.1 receives what the service sends; a test-mode receipt
for any other address is printed to the log instead, and its access link is shown on the checkout
page and in the dashboard.
"""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from invoices_app.models import AccessLink, EmailRecord, Invoice
from invoices_app.services.access import access_url
from invoices_app.services.delivery import ResendLogged, receipt_resend
from invoices_app.services.fulfilment import fulfilment_run
from invoices_app.tests.conftest import create_session, mark_paid
from keys_app.services import key_issue
from sessions_app.lifecycle import payment_event_apply
from sessions_app.providers import stripe_provider

pytestmark = pytest.mark.django_db

STRANGER = "stranger@example.org"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def smtp(settings, smtp_server):
    """The service mails through the real SMTP server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", smtp_server.port, 5
    return smtp_server


@pytest.fixture
def shop(merchant):
    """A merchant in test mode that lists one test inbox (and none of the invoices suite's)."""
    merchant.test_email_recipients = ["qa@shop.example"]
    merchant.save(update_fields=["test_email_recipients"])
    return merchant


def _paid(merchant, email: str, **extra):
    session = create_session(merchant, email=email, **extra)
    mark_paid(session)
    fulfilment_run(session_id=session.pk)
    return session


def _recipients(sink) -> set[str]:
    return {address.strip().lower() for message in sink.messages for address in str(message["To"]).split(",")}


def test_no_test_mode_email_reaches_an_address_that_is_not_listed(shop, smtp, caplog):
    # given test sessions paid by a stranger, by a listed inbox and by the merchant itself
    with caplog.at_level(logging.WARNING, logger="invoices_app.services.delivery"):
        stranger = _paid(shop, STRANGER)
    listed = _paid(shop, "QA@shop.example")
    own = _paid(shop, shop.email)

    # then the SMTP server received mail for the listed inbox and the merchant only
    assert _recipients(smtp) == {"qa@shop.example", shop.email}
    assert not smtp.to(STRANGER)
    assert len(smtp.to(shop.email)) == 4  # its own receipt and three payment notices
    # and the stranger's receipt is in the log (its access token left out), and recorded as logged
    token = access_url(AccessLink.objects.get(session=stranger)).rsplit("/", 1)[1]
    logged = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert len(logged) == 1 and STRANGER in logged[0] and "Your receipt" in logged[0]
    assert token not in logged[0] and "/access/[redacted]" in logged[0]
    record = EmailRecord.objects.get(session=stranger, kind=EmailRecord.Kind.RECEIPT)
    assert record.sent_at is not None and record.message_id == ""
    assert AuditEvent.objects.filter(action="email.receipt.logged", subject_id=str(stranger.pk)).exists()
    assert not AuditEvent.objects.filter(action="email.receipt.sent", subject_id=str(stranger.pk)).exists()
    for session in (listed, own):
        assert AuditEvent.objects.filter(action="email.receipt.sent", subject_id=str(session.pk)).exists()


def test_the_checkout_page_and_the_dashboard_show_the_access_link_instead(shop, smtp, client):
    session = _paid(shop, STRANGER)
    url = access_url(AccessLink.objects.get(session=session))

    page = client.get(f"/checkout?session={session.pk}").content.decode()
    assert 'data-testid="test-access-link"' in page and url in page
    assert "A receipt has been sent" not in page

    staff = get_user_model().objects.create_superuser("root", "root@example.test", "correct horse battery")
    client.force_login(staff)
    dashboard = client.get(f"/admin/sessions_app/paymentsession/{session.pk}/change/").content.decode()
    assert 'data-testid="session-test-access-link"' in dashboard and url in dashboard


def test_a_listed_customer_sees_the_usual_receipt_notice_and_no_link(shop, smtp, client):
    session = _paid(shop, "qa@shop.example")

    page = client.get(f"/checkout?session={session.pk}").content.decode()

    assert "A receipt has been sent to qa@shop.example" in page
    assert 'data-testid="test-access-link"' not in page


def test_live_mode_mails_the_customer_whoever_it_is(shop, smtp):
    shop.api_key = key_issue(account=shop, mode="live").api_key
    session = create_session(shop, email=STRANGER, mode="live")
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                       amount=session.amount, currency=session.currency, livemode=True)
    payment_event_apply(stripe_provider.parse(json.dumps(event).encode()))

    fulfilment_run(session_id=session.pk)

    assert len(smtp.to(STRANGER)) == 1


def test_email_me_my_links_does_not_mail_test_links_to_an_unlisted_address(shop, smtp, client, caplog):
    _paid(shop, STRANGER)
    smtp.messages.clear()

    with caplog.at_level(logging.WARNING, logger="invoices_app.services.access"):
        response = client.post("/access", {"email": STRANGER})

    assert response.status_code == 200
    assert not smtp.messages
    assert any("access links" in r.getMessage() and STRANGER in r.getMessage() for r in caplog.records)


def test_a_resent_test_receipt_to_an_unlisted_address_goes_to_the_log(shop, smtp, caplog):
    session = _paid(shop, STRANGER)
    smtp.messages.clear()

    with caplog.at_level(logging.WARNING, logger="invoices_app.services.delivery"), pytest.raises(ResendLogged):
        receipt_resend(invoice=Invoice.objects.get(session=session), actor="staff")

    assert not smtp.messages
    assert AuditEvent.objects.filter(action="email.receipt.logged", subject_type="invoice").exists()


# ---------------------------------------------------------------- PATCH /account


def test_the_merchant_lists_its_test_recipients(api):
    response = api.patch("/account", {"test_email_recipients": ["QA@Shop.example", "qa@shop.example",
                                                                "dev@shop.example"]}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["test_email_recipients"] == ["qa@shop.example", "dev@shop.example"]
    assert api.get("/account").json()["test_email_recipients"] == ["qa@shop.example", "dev@shop.example"]


@pytest.mark.parametrize("value", [
    [f"qa{i}@shop.example" for i in range(21)],
    ["not-an-address"],
    ["a" * 250 + "@x.example"],
    "qa@shop.example",
    [None],
], ids=["21-addresses", "invalid", "too-long", "not-a-list", "null-entry"])
def test_test_recipients_are_validated(api, merchant, value):
    before = list(merchant.test_email_recipients)

    response = api.patch("/account", {"test_email_recipients": value}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "test_email_recipients"
    merchant.refresh_from_db()
    assert merchant.test_email_recipients == before
