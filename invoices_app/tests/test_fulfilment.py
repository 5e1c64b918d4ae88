import hashlib
import io
import re
import threading
from datetime import timedelta
from decimal import Decimal
from smtplib import SMTPServerDisconnected

import pytest
from django.core.files.storage import default_storage
from django.core.mail.backends import locmem
from django.db import connection
from django.utils import timezone
from pypdf import PdfReader

from audit.models import AuditEvent
from audit.services import audit_verify
from invoices_app import claims, handoff
from invoices_app.models import AccessLink, EmailRecord, Fulfilment, Invoice, KeyReveal
from invoices_app.pdf import render_invoice_pdf
from invoices_app.selectors import invoice_document
from invoices_app.services.access import access_link_create, access_token
from invoices_app.services.delivery import EmailInFlight, receipt_send
from invoices_app.services.documents import invoice_pdf_store
from invoices_app.services.fulfilment import fulfilment_run
from invoices_app.services.numbering import invoice_issue, vat_split
from invoices_app.tests.conftest import create_session, mark_paid
from keys_app.models import EntitlementKey
from keys_app.services import account_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_a_paid_session_gets_an_invoice_a_pdf_a_key_a_link_and_two_emails(paid_session, merchant, mailoutbox):
    # given a merchant with an address, a VAT id and 19 % VAT, and a paid session
    account_update(account=merchant, actor="test", address="Hauptstr. 1\n10115 Berlin", vat_id="DE123456789",
                   vat_rate=Decimal("19"), invoice_prefix="ACME")
    session = paid_session(amount="119.00")

    # when it is fulfilled
    fulfilment = fulfilment_run(session_id=session.pk)

    # then every step happened once, and the fulfilment is complete
    assert fulfilment.completed_at is not None
    invoice = Invoice.objects.get(session=session)
    assert invoice.number == f"TEST-ACME-{timezone.now().year}-00001"
    assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("100.00"), Decimal("19.00"), Decimal("119.00"))
    assert invoice.seller_vat_id == "DE123456789" and invoice.buyer_email == "buyer@example.com"
    assert invoice.payment_reference.startswith("pi_test_")
    text = pdf_text(default_storage.open(invoice.pdf_name).read())
    assert invoice.number in text and "119.00 EUR" in text and "Acme GmbH" in text and "DE123456789" in text
    key = EntitlementKey.objects.get(session_id=session.pk)
    assert (key.account, key.customer_email, key.mode) == (merchant, "buyer@example.com", "test")
    assert AccessLink.objects.filter(session=session).count() == 1
    receipt, notice = sorted(mailoutbox, key=lambda m: m.to[0])[::-1]
    assert receipt.to == ["buyer@example.com"] and notice.to == ["billing@acme.test"]
    assert receipt.attachments[0][0] == f"{invoice.number}.pdf"
    assert key.prefix in receipt.body and "/access/" in receipt.body
    assert receipt.alternatives[0][1] == "text/html"
    assert "Payment received" in notice.subject
    # and every step is in the audit trail, whose chains still verify
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"invoice.issued", "invoice.pdf_stored", "fulfilment.key_issued", "access_link.created",
            "email.receipt.sent", "email.merchant_paid.sent", "fulfilment.completed"} <= actions
    assert audit_verify() == []


def test_fulfilling_a_session_again_changes_nothing(paid_session, mailoutbox):
    # given a fulfilled session
    session = paid_session()
    fulfilment_run(session_id=session.pk)
    Fulfilment.objects.filter(pk=session.pk).update(completed_at=None)  # as if the last step's record was lost

    # when the task runs again, twice
    fulfilment_run(session_id=session.pk)
    fulfilment_run(session_id=session.pk)

    # then nothing is doubled
    assert Invoice.objects.count() == 1
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1
    assert AccessLink.objects.count() == 1 and KeyReveal.objects.count() == 1
    assert len(mailoutbox) == 2
    assert EmailRecord.objects.filter(sent_at__isnull=False).count() == 2


def test_invoice_numbers_count_per_merchant_and_year_without_gaps(merchant, other_merchant):
    # given paid sessions of two merchants
    sessions = [create_session(merchant) for _ in range(3)] + [create_session(other_merchant)]
    for session in sessions:
        mark_paid(session)

    # when each gets its invoice
    numbers = [invoice_issue(session=s).number for s in sessions]

    # then each merchant counts from 1, test mode in a series of its own
    year = timezone.now().year
    assert numbers == [f"TEST-INV-{year}-00001", f"TEST-INV-{year}-00002", f"TEST-INV-{year}-00003",
                       f"TEST-INV-{year}-00001"]


def test_test_and_live_invoices_are_numbered_in_separate_series(merchant):
    from sessions_app.tests.refund_support import paid_session as paid

    order = [paid(merchant, mode=mode) for mode in ("test", "live", "test", "live")]

    numbers = [invoice_issue(session=s).number for s in order]

    year = timezone.now().year
    # a test invoice never takes a number from the live series
    assert numbers == [f"TEST-INV-{year}-00001", f"INV-{year}-00001", f"TEST-INV-{year}-00002", f"INV-{year}-00002"]
    assert list(Invoice.objects.order_by("number").values_list("mode", flat=True)) == ["live", "live", "test", "test"]


@pytest.mark.parametrize(("gross", "rate", "currency", "net", "vat"), [
    ("119.00", "19", "EUR", "100.00", "19.00"),
    ("10.00", "0", "EUR", "10.00", "0.00"),
    ("9.99", "21", "EUR", "8.26", "1.73"),
    ("1000", "10", "JPY", "909", "91"),
    ("1.000", "5", "KWD", "0.952", "0.048"),
])
def test_vat_is_split_from_the_gross_amount_in_the_currency_s_minor_units(gross, rate, currency, net, vat):
    n, v, g = vat_split(gross=Decimal(gross), rate=Decimal(rate), currency=currency)
    assert (str(n), str(v)) == (net, vat)
    assert n + v == g


def test_the_pdf_renders_the_same_bytes_again_on_a4(paid_session):
    # given an issued invoice
    invoice = invoice_issue(session=paid_session())
    data = invoice_document(invoice=invoice)

    # when it is rendered twice
    first, second = render_invoice_pdf(data), render_invoice_pdf(data)

    # then the bytes are identical and the page is A4
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    box = PdfReader(io.BytesIO(first)).pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210, 297)


def test_a_full_refund_marks_the_invoice_row_refunded_and_leaves_its_pdf_alone(paid_session):
    from invoices_app.services.numbering import invoice_mark_refunded

    session = paid_session()
    invoice = invoice_issue(session=session)
    invoice_mark_refunded(session_id=session.pk, refund_id="r1")
    invoice_mark_refunded(session_id=session.pk, refund_id="r1")
    refreshed = Invoice.objects.get(session=session)
    assert refreshed.status == Invoice.Status.REFUNDED
    assert (refreshed.number, refreshed.pdf_sha256) == (invoice.number, invoice.pdf_sha256)
    assert AuditEvent.objects.filter(action="invoice.refunded").count() == 1


def test_an_smtp_failure_gives_the_claim_back_and_the_retry_sends_once(paid_session, mailoutbox, monkeypatch):
    # given a session whose receipt fails to send once
    session = paid_session()
    real_send = locmem.EmailBackend.send_messages
    calls = {"n": 0}

    def flaky_send(backend, messages):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SMTPServerDisconnected("connection lost")
        return real_send(backend, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", flaky_send)

    # when the run fails and is retried
    with pytest.raises(SMTPServerDisconnected):
        fulfilment_run(session_id=session.pk)
    record = EmailRecord.objects.get(kind="receipt")
    assert record.claimed_at is None and record.sent_at is None and "connection lost" in record.last_error
    fulfilment_run(session_id=session.pk)

    # then the receipt went out once
    assert len([m for m in mailoutbox if m.to == ["buyer@example.com"]]) == 1
    assert EmailRecord.objects.get(kind="receipt").attempts == 2


def test_a_run_leaves_a_session_that_another_live_run_holds(paid_session, mailoutbox):
    # given another run, on a connection of its own, holding the session's fulfilment claim
    session = paid_session()
    holding, release = threading.Event(), threading.Event()

    def other_run():
        with claims.run_claim(session.pk) as claimed:
            assert claimed
            holding.set()
            release.wait(10)
        connection.close()

    other = threading.Thread(target=other_run)
    other.start()
    try:
        assert holding.wait(10)
        # when this run starts, it does nothing at all
        assert fulfilment_run(session_id=session.pk) is None
        assert not Invoice.objects.filter(session=session).exists()
        assert mailoutbox == []
    finally:
        release.set()
        other.join()

    # and once the other run is gone, a run fulfils it
    fulfilment_run(session_id=session.pk)
    assert Fulfilment.objects.get(pk=session.pk).completed_at is not None


def test_an_email_claimed_by_a_run_that_died_is_sent_at_once_by_the_next_run(paid_session, mailoutbox):
    # given a receipt claimed a moment ago by a run that no longer holds the session (it died)
    session = paid_session()
    invoice_pdf_store(invoice=invoice_issue(session=session))
    EmailRecord.objects.create(session=session, kind="receipt", to="buyer@example.com", claimed_at=timezone.now())

    # when the next run reaches the email step, it takes over without waiting for the lease
    fulfilment_run(session_id=session.pk)

    # then each email went out once
    assert sorted(m.to[0] for m in mailoutbox) == ["billing@acme.test", "buyer@example.com"]
    assert EmailRecord.objects.get(session=session, kind="receipt").sent_at is not None


def test_outside_a_run_a_fresh_email_claim_is_left_until_its_lease_runs_out(paid_session, mailoutbox):
    # given a receipt claimed a moment ago, and a send that holds no fulfilment claim
    session = paid_session()
    invoice = invoice_issue(session=session)
    invoice_pdf_store(invoice=invoice)
    invoice.refresh_from_db()
    link = access_link_create(session=session, invoice=invoice)
    EmailRecord.objects.create(session=session, kind="receipt", to="buyer@example.com", claimed_at=timezone.now())

    # then it backs off
    with pytest.raises(EmailInFlight):
        receipt_send(session=session, invoice=invoice, link=link)
    assert mailoutbox == []

    # and once the lease has run out, it sends
    EmailRecord.objects.update(claimed_at=timezone.now() - timedelta(hours=1))
    receipt_send(session=session, invoice=invoice, link=link)
    assert len(mailoutbox) == 1


def test_the_safety_net_requeues_only_unfinished_paid_sessions(paid_session, mailoutbox, settings):
    # given one session fulfilled and one whose task was lost, both paid a while ago
    done, lost = paid_session(), paid_session(email="other@example.com")
    fulfilment_run(session_id=done.pk)
    past = timezone.now() - timedelta(minutes=10)
    type(done).objects.filter(pk__in=[done.pk, lost.pk]).update(paid_at=past)

    # when the safety net runs (tasks run in-process here)
    queued = handoff.fulfilment_safety_net()

    # then only the lost one was queued, and it is now complete
    assert queued == 1
    assert Fulfilment.objects.get(pk=lost.pk).completed_at is not None
    assert handoff.fulfilment_safety_net() == 0


def test_a_session_paid_moments_ago_is_left_to_its_own_task(paid_session):
    paid_session()
    assert handoff.fulfilment_safety_net() == 0


def test_a_session_paid_without_an_email_gets_its_invoice_and_the_merchant_is_told(merchant, mailoutbox):
    session = create_session(merchant, email="")
    mark_paid(session)

    fulfilment = fulfilment_run(session_id=session.pk)

    assert fulfilment.completed_at is not None
    assert Invoice.objects.filter(session=session).exists()
    assert not EntitlementKey.objects.filter(session_id=session.pk).exists()
    assert [m.to for m in mailoutbox] == [["billing@acme.test"]]


def test_a_refund_webhook_marks_the_invoice_refunded_and_the_key_verifies_as_refunded(
        paid_session, client, api, django_capture_on_commit_callbacks):
    import json

    from sessions_app.providers import stripe_provider

    # given a fulfilled session
    session = paid_session()
    fulfilment_run(session_id=session.pk)

    # when Stripe reports the charge refunded
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="charge.refunded",
                                       amount=session.amount, currency="EUR")
    event["data"]["object"].update({"object": "charge", "amount_refunded": 9999})
    body = json.dumps(event)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/webhooks/stripe", body, content_type="application/json",
                               HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))

    # then the invoice says so, and the key it bought verifies as refunded
    assert response.status_code == 200
    assert Invoice.objects.get(session=session).status == Invoice.Status.REFUNDED
    key = EntitlementKey.objects.get(session_id=session.pk)
    assert key.refunded_at is not None
    plaintext = client.post(f"/access/{access_token(key.reveal.session.access_link)}/reveal-key"
                            ).context["revealed_key"]
    verified = api.post("/keys/verify", {"key": plaintext}, format="json").json()
    assert (verified["valid"], verified["code"]) == (False, "refunded")


def test_the_paid_signal_queues_fulfilment(merchant, django_capture_on_commit_callbacks, mailoutbox):
    session = create_session(merchant)
    with django_capture_on_commit_callbacks(execute=True):
        mark_paid(session)
    assert Fulfilment.objects.get(pk=session.pk).completed_at is not None


def test_the_fulfil_pending_command_runs_the_safety_net(paid_session, mailoutbox):
    from io import StringIO

    from django.core.management import call_command

    session = paid_session()
    out = StringIO()
    call_command("fulfil_pending", "--older-than", "0", stdout=out)
    assert "1 session(s)" in out.getvalue()
    assert Fulfilment.objects.get(pk=session.pk).completed_at is not None


def test_a_merchant_s_odd_name_and_prefix_stay_out_of_paths_and_headers(paid_session, merchant, mailoutbox):
    account_update(account=merchant, actor="test", name="Evil\nBcc: x@evil.test", invoice_prefix="../X")
    session = paid_session()

    fulfilment_run(session_id=session.pk)

    invoice = Invoice.objects.get(session=session)
    folder, _, filename = invoice.pdf_name.rpartition("/")
    assert folder == f"invoices/{merchant.pk}" and filename.endswith(".pdf") and filename != ".."
    assert all("\n" not in m.subject for m in mailoutbox) and len(mailoutbox) == 2


def test_the_key_carries_the_session_s_entitlement_and_the_merchant_s_mode(paid_session, merchant):
    # given a merchant issuing live keys, and a session selling 30 days with metadata
    account_update(account=merchant, actor="test", issued_key_mode="live")
    session = paid_session(entitlement={"expires_in_days": 30, "metadata": {"plan": "pro"}})

    # when it is fulfilled
    fulfilment_run(session_id=session.pk)

    # then its key is a live key of the merchant, with that expiry and metadata
    key = EntitlementKey.objects.get(session_id=session.pk)
    assert (key.account_id, key.mode, key.metadata) == (merchant.pk, "live", {"plan": "pro"})
    assert abs((key.expires_at - (key.created_at + timedelta(days=30))).total_seconds()) < 1
    assert key.prefix.startswith("ek_live_")


def test_the_receipt_carries_the_key_only_when_the_merchant_opts_in(paid_session, merchant, mailoutbox, client):
    # given one session sold with the option off, then one with it on
    off = paid_session(email="off@example.com")
    fulfilment_run(session_id=off.pk)
    account_update(account=merchant, actor="test", email_key_to_customer=True)
    on = paid_session(email="on@example.com")
    fulfilment_run(session_id=on.pk)

    receipt_off = next(m for m in mailoutbox if m.to == ["off@example.com"])
    receipt_on = next(m for m in mailoutbox if m.to == ["on@example.com"])
    # with the option off, the receipt names the key (prefix and last 4) but does not contain it
    assert not re.search(r"ek_test_[0-9A-Za-z]{30}", receipt_off.body + receipt_off.alternatives[0][0])
    assert EntitlementKey.objects.get(session_id=off.pk).display in receipt_off.body
    # with the option on, the receipt carries the key itself, and it is the key that verifies
    plaintext = re.search(r"ek_test_[0-9A-Za-z]{30}", receipt_on.body).group(0)
    assert plaintext in receipt_on.alternatives[0][0]
    key = EntitlementKey.objects.get(session_id=on.pk)
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    # and then the access page says the key was emailed, and offers no reveal
    reveal = KeyReveal.objects.get(session=on)
    assert reveal.emailed_at is not None and reveal.ciphertext == ""
    token = access_token(AccessLink.objects.get(session=on))
    page = client.get(f"/access/{token}").content.decode()
    assert "was emailed to on@example.com" in page and "Reveal my key" not in page
    assert AuditEvent.objects.filter(action="key.emailed").count() == 1
    # while the other buyer still reveals theirs on the page
    other = client.get(f"/access/{access_token(AccessLink.objects.get(session=off))}").content.decode()
    assert "Reveal my key" in other


def test_the_receipt_s_reply_to_and_seller_come_from_the_merchant_account(paid_session, merchant, mailoutbox):
    session = paid_session()
    fulfilment_run(session_id=session.pk)

    receipt = next(m for m in mailoutbox if m.to == ["buyer@example.com"])
    assert receipt.reply_to == [merchant.email]
    assert receipt.subject.endswith(f"from {merchant.name}")
