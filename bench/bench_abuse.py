"""What refusing costs: median and p99 time per request, in-process (no network), for junk
webhooks refused before the database, a replayed signed webhook (the database path), and
create_session allowed vs rate-limited.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/payments_bench \
    BENCH_REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/bench_abuse.py --requests 500

With BENCH_REDIS_URL the rate-limit counters are in Redis, as in production (give it a Redis
database of its own: the bench clears it); without it, in process memory. Counts are bounded (at most 5000 per kind).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    n = min(max(parser.parse_args().requests, 10), 5000)

    db_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments_bench")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    os.environ.update({"ALLOW_DEBUG": "1", "DATABASE_URL": db_url, "DATA_DIR": tempfile.mkdtemp(prefix="bench-abuse-"),
                       "LOG_LEVEL": "ERROR", "REDIS_URL": redis_url})
    from bench.run import ensure_database

    ensure_database(db_url)

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")
    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from keys_app.services import merchant_create
    from sessions_app.providers import stripe_provider

    call_command("migrate", verbosity=0)
    logging.disable(logging.WARNING)  # every refusal is logged; the bench measures, it does not read them
    cache.clear()  # counters left by an earlier run
    _, issued = merchant_create(name="Bench Abuse GmbH", email="bench-abuse@example.com")
    api = Client(HTTP_X_API_KEY=issued.plaintext, HTTP_HOST="127.0.0.1")
    web = Client(HTTP_HOST="127.0.0.1")
    created = api.post("/create_session", {"amount": "10.00"}, content_type="application/json").json()
    event = json.dumps(stripe_provider.test_event(session_id=created["session_id"], event_type="payment_intent.succeeded",
                                                  amount=Decimal("10.00"), currency="EUR"))
    web.post("/webhooks/stripe", event, content_type="application/json", HTTP_STRIPE_SIGNATURE=stripe_provider.sign(event))

    def measure(call) -> tuple[list[float], set[int], float]:
        times, statuses, queries = [], set(), 0
        for _ in range(n):
            connection.queries_log.clear()  # a bounded deque: once full, its length stops counting
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                statuses.add(call().status_code)
                times.append((time.perf_counter() - started) * 1000)
            queries += len(captured)
        return times, statuses, queries / n

    kinds = {
        "webhook unsigned (refused)": lambda: web.post("/webhooks/stripe", event, content_type="application/json"),
        "webhook oversized (refused)": lambda: web.post("/webhooks/stripe", "{}", content_type="application/json",
                                                         HTTP_STRIPE_SIGNATURE="t=1,v1=0",
                                                         CONTENT_LENGTH=str(10 * 1024 * 1024)),
        "webhook bad signature (refused)": lambda: web.post("/webhooks/stripe", event, content_type="application/json",
                                                             HTTP_STRIPE_SIGNATURE=stripe_provider.sign("{}")),
        "webhook signed replay (database)": lambda: web.post("/webhooks/stripe", event,
                                                              content_type="application/json",
                                                              HTTP_STRIPE_SIGNATURE=stripe_provider.sign(event)),
        "create_session (allowed)": lambda: api.post("/create_session", {"amount": "10.00"},
                                                     content_type="application/json"),
    }
    results = {}
    for name, call in kinds.items():
        cache.clear()
        settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
            {k: "1000000/min" for k in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]})
        results[name] = measure(call)

    # Rate-limited: a limit of 1 a minute, then n refused requests.
    cache.clear()
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["create_session_key"] = "1/min"
    api.post("/create_session", {"amount": "10.00"}, content_type="application/json")
    results["create_session (rate-limited)"] = measure(
        lambda: api.post("/create_session", {"amount": "10.00"}, content_type="application/json"))

    print(f"{n} requests each, in-process, cache: {'Redis' if redis_url else 'local memory'}")
    print(f"{'kind':36} {'median ms':>10} {'p99 ms':>8} {'queries/req':>12}  status")
    for name, (times, statuses, queries) in results.items():
        print(f"{name:36} {statistics.median(times):10.3f} {percentile(times, 0.99):8.3f} {queries:12.1f}  "
              f"{sorted(statuses)}")


if __name__ == "__main__":
    main()
