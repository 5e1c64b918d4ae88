"""The fulfilment figures of `make bench`: paid -> email sent with one worker, and the PDF render.

Payments go through the running gunicorn's webhook endpoint, signed, one every PACE_S seconds
(a steady trickle, well within one worker's capacity); the worker issues the invoice, renders
and stores the PDF, issues the buyer's key and sends the receipt over real SMTP to the bench's
own server. Latency runs from the session's `paid_at` to the receipt's arrival.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

PAYMENTS = 30
PACE_S = 0.5
EMAIL_DEADLINE_S = 60
PDF_RENDERS = 20


def available() -> bool:
    try:
        import invoices_app.pdf  # noqa: F401
        import invoices_app.tasks  # noqa: F401
    except ImportError:
        return False
    return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _pay(bench, session_id: str) -> None:
    from sessions_app.providers import stripe_provider

    event = stripe_provider.test_event(session_id=session_id, event_type="payment_intent.succeeded",
                                       amount=Decimal("49.99"), currency="EUR")
    body = json.dumps(event, separators=(",", ":"))
    conn = http.client.HTTPConnection("127.0.0.1", bench.port, timeout=10)
    try:
        conn.request("POST", "/webhooks/stripe", body=body, headers={
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_provider.sign(body, secret=bench.env["STRIPE_WEBHOOK_SECRET"])})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status != 200 or json.loads(answer).get("outcome") != "processed":
        raise RuntimeError(f"webhook for {session_id} answered {response.status}: {answer[:200]!r}")


def paid_to_email(bench) -> list[float]:
    from keys_app.models import ApiKey
    from sessions_app.models import PaymentSession
    from sessions_app.services import session_create

    key = ApiKey.objects.filter(account=bench.merchant).order_by("created_at").first()
    run = int(time.time())
    emails = [f"buyer-{run}-{i}@example.com" for i in range(PAYMENTS)]
    # Test mode mails only the addresses a merchant lists: the bench lists its buyers (set on the
    # model directly; the API allows 20).
    bench.merchant.test_email_recipients = emails
    bench.merchant.save(update_fields=["test_email_recipients"])
    buyers = {}
    for email in emails:
        session = session_create(account=bench.merchant, api_key=key, amount=Decimal("49.99"),
                                 description="Pro plan, monthly", customer_email=email)
        buyers[email] = str(session.pk)
    start = time.monotonic()
    for i, session_id in enumerate(buyers.values()):
        # Steady arrivals, not a burst: what a queue sees from ordinary traffic.
        delay = start + i * PACE_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _pay(bench, session_id)
    deadline = time.monotonic() + EMAIL_DEADLINE_S
    arrived: dict[str, float] = {}
    while time.monotonic() < deadline and len(arrived) < len(buyers):
        for when, rcpts, _content in list(bench.mail.received):
            for rcpt in rcpts:
                if rcpt in buyers:
                    arrived.setdefault(rcpt, when)
        time.sleep(0.05)
    missing = set(buyers) - set(arrived)
    if missing:
        raise RuntimeError(f"{len(missing)} receipts did not arrive within {EMAIL_DEADLINE_S} s "
                           f"(celery log:\n{bench.celery.tail()})")
    paid_at = dict(PaymentSession.objects.filter(pk__in=buyers.values()).values_list("pk", "paid_at"))
    return [arrived[email] - paid_at[uuid.UUID(sid)].timestamp() for email, sid in buyers.items()]


def pdf_render_ms() -> list[float]:
    """Render one invoice as a worker does (one FontConfiguration per process), after a warm-up."""
    from invoices_app.models import Invoice
    from invoices_app.pdf import render_invoice_pdf
    from invoices_app.selectors import invoice_document

    invoice = Invoice.objects.order_by("-pk").first()
    data = invoice_document(invoice=invoice)
    render_invoice_pdf(data)
    times = []
    for _ in range(PDF_RENDERS):
        start = time.perf_counter()
        render_invoice_pdf(data)
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(bench) -> dict[str, Any]:
    latencies = paid_to_email(bench)
    renders = pdf_render_ms()
    return {
        "count": len(latencies),
        "pace_s": PACE_S,
        "paid_to_email_p50_s": round(statistics.median(latencies), 3),
        "paid_to_email_p99_s": round(percentile(latencies, 0.99), 3),
        "paid_to_email_max_s": round(max(latencies), 3),
        "pdf_count": len(renders),
        "pdf_median_ms": round(statistics.median(renders), 1),
        "pdf_p99_ms": round(percentile(renders, 0.99), 1),
    }
