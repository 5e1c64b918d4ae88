"""Fulfilment speed: median PDF render time, and paid-to-email latency with one worker on Redis.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/payments_bench \
    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/bench_fulfilment.py --renders 30 --payments 30

It creates the database if needed and migrates it, starts an SMTP server (aiosmtpd) on a free
loopback port and one `celery worker` (concurrency 1), then pays sessions one after another
with signed Stripe webhooks and measures from the webhook's 200 to the receipt arriving over SMTP.
Counts are bounded (at most 200 of each) and every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.fulfilment import percentile  # noqa: E402 - after the path is set
from bench.run import ensure_database, free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument("--payments", type=int, default=30)
    args = parser.parse_args()
    renders, payments = min(max(args.renders, 1), 200), min(max(args.payments, 1), 200)

    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-fulfilment-"))
    smtp_port = free_port()
    env = {**os.environ, "ALLOW_DEBUG": "1", "DATABASE_URL": db_url, "REDIS_URL": redis_url,
           "DATA_DIR": str(data_dir), "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    ensure_database(db_url)

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")
    django.setup()
    import redis
    from aiosmtpd.controller import Controller
    from django.core.management import call_command
    from django.test import Client

    from invoices_app.models import Invoice
    from invoices_app.pdf import render_invoice_pdf
    from invoices_app.selectors import invoice_document
    from invoices_app.services.numbering import invoice_issue
    from keys_app.services import merchant_create
    from sessions_app.lifecycle import payment_event_apply
    from sessions_app.providers import stripe_provider
    from sessions_app.services import session_create

    call_command("migrate", verbosity=0)
    # A queue of the bench's own: the Redis database may be shared.
    from payments_site.celery import app

    queue = f"bench-{os.getpid()}"
    app.conf.task_default_queue = queue
    merchant, issued = merchant_create(name="Bench Merchant GmbH", email="bench-merchant@example.com")

    # --- PDF render time (in this process, one FontConfiguration, as on a worker)
    from decimal import Decimal

    sample = session_create(account=merchant, api_key=issued.api_key, amount=Decimal("119.00"),
                            customer_email="sample@example.com", description="Bench plan")
    body = json.dumps(stripe_provider.test_event(session_id=str(sample.pk), event_type="payment_intent.succeeded",
                                                 amount=sample.amount, currency="EUR"))
    payment_event_apply(stripe_provider.parse(body.encode()))
    data = invoice_document(invoice=invoice_issue(session=sample))
    render_invoice_pdf(data)  # warm-up: fonts are loaded on first use
    render_ms = []
    for _ in range(renders):
        start = time.perf_counter()
        render_invoice_pdf(data)
        render_ms.append((time.perf_counter() - start) * 1000)

    # --- paid -> email latency with one worker on Redis
    arrived: dict[str, float] = {}
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                for rcpt in envelope.rcpt_tos:
                    arrived.setdefault(rcpt, time.perf_counter())
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    log = (data_dir / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "payments_site", "worker", "--concurrency", "1",
                               "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-Q", queue, "-n", f"{queue}@%h"],
                              cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    latencies_ms: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while " ready." not in (data_dir / "worker.log").read_text():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("worker did not start:\n" + (data_dir / "worker.log").read_text()[-2000:])
            time.sleep(0.05)
        client = Client(HTTP_HOST="127.0.0.1")
        for i in range(payments):
            buyer = f"buyer{i}-{os.getpid()}@example.com"
            session = session_create(account=merchant, api_key=issued.api_key, amount=Decimal("49.90"),
                                     customer_email=buyer, description="Bench plan")
            body = json.dumps(stripe_provider.test_event(session_id=str(session.pk),
                                                         event_type="payment_intent.succeeded",
                                                         amount=session.amount, currency="EUR"))
            response = client.post("/webhooks/stripe", body, content_type="application/json",
                                   HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
            accepted = time.perf_counter()
            assert response.status_code == 200, response.content
            deadline = time.monotonic() + 30
            while buyer not in arrived:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no email for payment {i} within 30 s")
                time.sleep(0.002)
            latencies_ms.append((arrived[buyer] - accepted) * 1000)
        # Let the last run finish (merchant notice) before a warm shutdown of the worker.
        from invoices_app.models import Fulfilment

        deadline = time.monotonic() + 30
        while Fulfilment.objects.filter(session__account=merchant, completed_at__isnull=True).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the main process waits for its children
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        controller.stop()
        client = redis.Redis.from_url(redis_url)
        # The queue has one list per priority step (queue, queue\x06\x166, …).
    client.delete(*client.keys(f"{queue}*"), f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")

    result = {
        "pdf_render_ms": {"n": renders, "median": round(statistics.median(render_ms), 1),
                          "p99": round(percentile(render_ms, 0.99), 1)},
        "paid_to_email_ms": {"n": payments, "median": round(statistics.median(latencies_ms), 1),
                             "p99": round(percentile(latencies_ms, 0.99), 1), "max": round(max(latencies_ms), 1)},
        "invoices": Invoice.objects.filter(account=merchant).count(),
    }
    print(f"PDF render: median {result['pdf_render_ms']['median']} ms over {renders} renders "
          f"(p99 {result['pdf_render_ms']['p99']} ms)")
    print(f"Paid -> email received: median {result['paid_to_email_ms']['median']} ms, "
          f"p99 {result['paid_to_email_ms']['p99']} ms over {payments} payments (one worker, Redis)")
    out = BASE_DIR / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "fulfilment.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
