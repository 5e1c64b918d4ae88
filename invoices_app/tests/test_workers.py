"""Fulfilment on real Celery workers over the real Redis broker, with a real SMTP server."""

import io
import re
import time
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from pypdf import PdfReader
from rest_framework.test import APIClient

from invoices_app import handoff
from invoices_app.models import AccessLink, EmailRecord, Fulfilment, Invoice, InvoiceCounter
from invoices_app.services.numbering import invoice_issue
from invoices_app.tests.conftest import (
    create_session,
    mark_paid,
    paid_event_body,
    post_webhook,
    use_broker,
    wait_until,
)
from keys_app.models import EntitlementKey
from sessions_app.models import PaymentSession, WebhookEvent
from sessions_app.services import session_expire
from tests.threads import run_together

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def in_threads(n: int, work) -> list:
    return run_together(n, work, timeout=120)


def completed(session) -> bool:
    return Fulfilment.objects.filter(pk=session.pk, completed_at__isnull=False).exists()


def access_link_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.search(r"https?://\S+/access/(\S+)", text).group(1)


def test_twenty_concurrent_paid_events_fulfil_once_and_the_email_carries_the_pdf_and_a_working_link(
        merchant, workers, smtp_server):
    # given a worker on Redis and an open session
    workers()
    session = create_session(merchant, amount="49.90")

    # when 20 signed paid events for it arrive at once (10 distinct ones, each delivered twice)
    bodies = [paid_event_body(session) for _ in range(10)] * 2
    responses = in_threads(20, lambda i: post_webhook(Client(), bodies[i]))

    # then every delivery is answered 200, one of them paid the session, and fulfilment completes
    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(r.json()["outcome"] for r in responses).count("processed") == 1
    wait_until(lambda: completed(session), timeout=60, message="fulfilment to complete")

    # with exactly one of everything
    invoice = Invoice.objects.get(session=session)
    assert Invoice.objects.count() == 1
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1
    assert AccessLink.objects.filter(session=session).count() == 1
    assert EmailRecord.objects.filter(session=session, sent_at__isnull=False).count() == 2
    assert len(smtp_server.to("buyer@example.com")) == 1
    assert len(smtp_server.to("billing@acme.test")) == 1
    assert handoff.fulfilment_safety_net(older_than_seconds=0) == 0

    # the stored PDF shows the number, the amount and the merchant
    stored = default_storage.open(invoice.pdf_name).read()
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(stored)).pages)
    assert invoice.number in text and "49.90 EUR" in text and "Acme GmbH" in text

    # and the email that went through SMTP carries the same PDF and a link that works
    receipt = smtp_server.to("buyer@example.com")[0]
    attachment = next(receipt.iter_attachments())
    assert attachment.get_filename() == f"{invoice.number}.pdf"
    assert attachment.get_content() == stored
    assert receipt.get_body(preferencelist=("html",)) is not None
    key = EntitlementKey.objects.get(session_id=session.pk)
    assert key.prefix in receipt.get_body(preferencelist=("plain",)).get_content()
    token = access_link_in(receipt)
    page = Client().get(f"/access/{token}")
    assert page.status_code == 200 and invoice.number in page.content.decode()
    pdf = Client().get(f"/access/{token}/invoice.pdf")
    assert pdf.status_code == 200 and pdf.content == stored


def test_invoice_numbers_stay_gapless_under_twenty_concurrent_payments(merchant):
    # given 20 paid sessions of one merchant
    sessions = [create_session(merchant, email=f"b{i}@example.com") for i in range(20)]
    for session in sessions:
        mark_paid(session)

    # when their invoices are issued at the same instant, from 20 connections
    numbers = in_threads(20, lambda i: invoice_issue(session=sessions[i]).number)

    # then the numbers are 1..20 with no gap and no repeat
    year = Invoice.objects.first().year
    assert sorted(numbers) == [f"TEST-INV-{year}-{n:05d}" for n in range(1, 21)]
    assert InvoiceCounter.objects.get(account=merchant, year=year, mode="test", series="invoice").last_number == 20


def test_a_worker_killed_mid_fulfilment_is_finished_by_the_next_one_within_seconds_without_doubles(
        merchant, workers, smtp_server, client):
    # given a worker that will be stopped dead while the SMTP server holds its receipt, and an
    # email lease far longer than the 10 s we allow: only the claim dying with the worker helps
    smtp_server.hold_next = True
    first = workers(FULFILMENT_EMAIL_LEASE_SECONDS="600")
    session = create_session(merchant)
    assert post_webhook(client, paid_event_body(session)).status_code == 200
    assert smtp_server.entered.wait(timeout=60), "the receipt never reached the SMTP server"

    # when the worker is killed with SIGKILL in the middle of sending
    first.kill()
    smtp_server.release.set()
    assert not completed(session)
    assert EmailRecord.objects.get(session=session, kind="receipt").sent_at is None

    # and a new worker starts (no safety net runs)
    workers(FULFILMENT_EMAIL_LEASE_SECONDS="600")
    ready = time.monotonic()

    # then the receipt is sent within 10 s of the new worker being ready
    wait_until(lambda: len(smtp_server.to("buyer@example.com")) == 1, timeout=10,
               message="the receipt within 10 s of the restart")
    wait_until(lambda: completed(session), timeout=10, message="fulfilment to complete after the restart")
    assert time.monotonic() - ready < 10

    # then everything completed once
    assert Invoice.objects.count() == 1 and InvoiceCounter.objects.get().last_number == 1
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1
    assert AccessLink.objects.count() == 1
    assert len(smtp_server.to("buyer@example.com")) == 1
    assert len(smtp_server.to("billing@acme.test")) == 1
    assert EmailRecord.objects.get(session=session, kind="receipt").attempts == 2


def test_a_payment_made_while_no_worker_runs_is_fulfilled_within_seconds_of_the_first_worker(
        merchant, workers, smtp_server, client):
    # given no worker running when a payment commits (its announcement reaches nobody)
    session = create_session(merchant)
    assert post_webhook(client, paid_event_body(session)).status_code == 200
    assert PaymentSession.objects.get(pk=session.pk).status == "paid"

    # when a worker starts (and no safety net runs)
    workers()
    started = time.monotonic()

    # then the receipt is sent within 10 s
    wait_until(lambda: len(smtp_server.to("buyer@example.com")) == 1, timeout=10,
               message="the receipt within 10 s of the worker being ready")
    wait_until(lambda: completed(session), timeout=10, message="fulfilment to complete")
    assert time.monotonic() - started < 10
    assert len(smtp_server.to("billing@acme.test")) == 1


def test_with_redis_down_the_webhook_is_stored_and_fulfilled_once_redis_and_a_worker_are_back(
        merchant, own_redis, worker_env, tmp_path, smtp_server, client):
    from invoices_app.tests.conftest import start_worker

    # given the app's broker is a Redis that is down when the payment arrives
    use_broker(own_redis.url)
    session = create_session(merchant, amount="12.34")
    own_redis.stop()

    # when the paid webhook arrives
    response = post_webhook(client, paid_event_body(session))

    # then it is answered 200 and stored, and the session is paid
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.filter(session=session, outcome="processed").count() == 1
    assert PaymentSession.objects.get(pk=session.pk).status == "paid"
    assert not Fulfilment.objects.filter(pk=session.pk, completed_at__isnull=False).exists()

    # when Redis is back and a worker runs (its relay looks back over recent payments)
    own_redis.start()
    worker = start_worker(env={**worker_env, "REDIS_URL": own_redis.url}, log=tmp_path / "worker.log")
    try:
        use_broker(own_redis.url)
        wait_until(lambda: completed(session), timeout=30, message="fulfilment after Redis came back")
    finally:
        worker.kill()

    # then fulfilment completed, once
    assert Invoice.objects.get(session=session).gross == Decimal("12.34")
    assert len(smtp_server.to("buyer@example.com")) == 1


def test_a_worker_killed_mid_fulfilment_is_taken_over_by_a_worker_still_running(
        merchant, workers, smtp_server, client):
    # given two workers, and an SMTP server that holds the first receipt
    smtp_server.hold_next = True
    pair = [workers(FULFILMENT_EMAIL_LEASE_SECONDS="600"), workers(FULFILMENT_EMAIL_LEASE_SECONDS="600")]
    session = create_session(merchant)
    assert post_webhook(client, paid_event_body(session)).status_code == 200
    assert smtp_server.entered.wait(timeout=60), "the receipt never reached the SMTP server"

    # when the worker that is sending it dies, and is not restarted
    sending = [w for w in pair if "] received" in w.log.read_text()]
    assert len(sending) == 1, "exactly one worker should have taken the task"
    sending[0].kill()
    smtp_server.release.set()
    killed = time.monotonic()

    # then the other worker finishes it within seconds, once
    wait_until(lambda: completed(session), timeout=10, message="the other worker to finish the fulfilment")
    assert time.monotonic() - killed < 10
    assert len(smtp_server.to("buyer@example.com")) == 1
    assert len(smtp_server.to("billing@acme.test")) == 1
    assert Invoice.objects.count() == 1


def test_a_late_payment_reaches_the_merchant_and_fulfil_anyway_clicked_twice_at_once_delivers_once(
        merchant, workers, smtp_server, client):
    # given a worker, and a session that expired before its payment arrived
    workers()
    session = create_session(merchant)
    session_expire(session_id=session.pk, actor="test")
    assert post_webhook(client, paid_event_body(session)).json()["outcome"] == "late"

    # then the merchant is emailed by the worker, and the buyer gets nothing yet
    wait_until(lambda: len(smtp_server.to("billing@acme.test")) == 1, timeout=20,
               message="the merchant's late-payment email")
    assert "Paid after expiry" in smtp_server.to("billing@acme.test")[0]["Subject"]
    assert smtp_server.to("buyer@example.com") == []

    # when the merchant clicks "fulfil anyway" twice at once
    def click(_):
        own = APIClient()
        own.credentials(HTTP_X_API_KEY=merchant.plaintext_key)
        return own.post(f"/sessions/{session.pk}/fulfil_anyway").status_code

    assert in_threads(2, click) == [200, 200]

    # then it is delivered exactly once
    wait_until(lambda: completed(session), timeout=30, message="the late-paid session to be delivered")
    assert Invoice.objects.filter(session=session).count() == 1
    assert len(smtp_server.to("buyer@example.com")) == 1
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1
    assert PaymentSession.objects.get(pk=session.pk).status == "failed"
