"""Dashboard cost on a large table: the revenue index, the session list and the streamed CSV export.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/payments_bench_dashboard \
    .venv/bin/python bench/bench_dashboard.py --sessions 200000 --runs 10

It creates the database if needed, migrates it, and fills it once with sessions of two merchants
(about 90 % of the rows belong to the merchant measured, over 30 days and three currencies).
Then it times the pages in-process with Django's test client, logged in as that merchant:
median and worst time, the SQL query count of each page, the CSV export's rows per second, and
how much the process's peak memory grew while streaming it. Counts are bounded (at most 1,000,000
sessions, 50 runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.run import ensure_database  # noqa: E402 - after the path is set


def seed(total: int) -> None:
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from keys_app.models import Account
    from keys_app.services import merchant_create, merchant_login_create
    from sessions_app.models import PaymentSession

    if Account.objects.filter(email="bench@dashboard.test").exists():
        have = PaymentSession.objects.count()
        if have >= total:
            return
        total -= have
    else:
        bench, _ = merchant_create(name="Bench Shop", email="bench@dashboard.test")
        merchant_login_create(account=bench)
        merchant_create(name="Other Shop", email="other@dashboard.test")
    bench = Account.objects.get(email="bench@dashboard.test")
    other = Account.objects.get(email="other@dashboard.test")
    now = timezone.now()
    chunk = 5000
    for start in range(0, total, chunk):
        rows = []
        for i in range(start, min(start + chunk, total)):
            when = now - timedelta(minutes=(i * 7) % (30 * 24 * 60))
            status = ("paid", "paid", "failed", "created", "pending")[i % 5]
            rows.append(PaymentSession(
                account=other if i % 10 == 0 else bench, amount=Decimal(5 + i % 200), mode="test",
                currency=("EUR", "USD", "GBP")[i % 3], status=status, created_at=when, expires_at=when,
                paid_at=when if status == "paid" else None, failed_at=when if status == "failed" else None,
                failure_reason=("card_declined", "expired", "insufficient_funds")[i % 3] if status == "failed" else "",
                provider="stripe", customer_email=f"buyer{i}@example.com", client_reference_id=f"order-{i}"))
        PaymentSession.objects.bulk_create(rows)
    with __import__("django.db").db.connection.cursor() as cursor:
        cursor.execute("ANALYZE sessions_app_paymentsession")


def timed(client, url: str, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    return {"url": url, "median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "queries": len(ctx.captured_queries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    total, runs = min(max(args.sessions, 1000), 1_000_000), min(max(args.runs, 1), 50)

    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_bench_dashboard")
    ensure_database(db_url)
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("ALLOW_DEBUG", "1")
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from sessions_app.models import PaymentSession

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seed(total)
    seeded_s = time.perf_counter() - started

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username="bench@dashboard.test"))
    pages = [timed(client, url, runs) for url in
             ("/admin/?mode=test", "/admin/sessions_app/paymentsession/",
              "/admin/sessions_app/paymentsession/?status=paid&provider=stripe",
              "/admin/sessions_app/paymentsession/?q=buyer123%40example.com")]

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    response = client.get("/admin/export/paid-sessions.csv")
    lines = sum(chunk.count(b"\n") for chunk in response.streaming_content) - 1
    export_s = time.perf_counter() - started
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    result = {
        "sessions": PaymentSession.objects.count(), "seed_s": round(seeded_s, 1), "pages": pages,
        "export": {"rows": lines, "seconds": round(export_s, 2), "rows_per_s": round(lines / export_s),
                   "peak_rss_growth_mb": round(rss_growth_mb, 1)},
    }
    print(json.dumps(result, indent=2))
    out = BASE_DIR / "bench" / "results" / "dashboard.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
