"""Profile one hot path in-process: SQL statements per request and a pyinstrument profile.

    .venv/bin/python bench/profile_path.py webhook [--requests 300] [--html out.html]

It uses its own database (recreated, like `make bench`) and the production settings, and calls
the WSGI application directly, so what it shows is the view's own work without the network.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, prepare_database, service_env  # noqa: E402


def _proc_cpu_seconds(pid: int) -> float | None:
    """user + system CPU of a local process (the PostgreSQL backend serving us), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=["create_session", "webhook", "status", "verify", "insert", "read"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--html", type=Path, default=None)
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() before the requests, as warmup.warm()")
    parser.add_argument("--time-only", action="store_true", help="CPU and wall time per request, no profiler")
    parser.add_argument("--cprofile", action="store_true", help="cProfile by own CPU time instead of pyinstrument")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args()

    import subprocess
    import tempfile

    env = service_env(database_url=args.database_url, redis_url=args.redis_url,
                      data_dir=Path(tempfile.mkdtemp(prefix="payments-profile-")), web_port=8000, smtp_port=25)
    prepare_database(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    from bench.baseline_app.models import BaselineRow
    from keys_app.entitlements import entitlement_key_issue
    from keys_app.services import merchant_create
    from sessions_app.providers import stripe_provider
    from sessions_app.services import session_create

    account, issued = merchant_create(name="Profile Ltd", email="p@example.com")
    client = Client(HTTP_HOST="127.0.0.1")
    n = args.requests
    sessions = [session_create(account=account, api_key=issued.api_key, amount=Decimal("49.99")).pk
                for _ in range(n + 20)]
    rows = BaselineRow.objects.bulk_create([BaselineRow(name="r", amount=Decimal(1)) for _ in range(10)])
    entitlement = entitlement_key_issue(account=account, session_id=sessions[0], customer_email="buyer@example.com",
                                        expires_in_days=365, metadata={"plan": "pro"}, actor="profile")
    verify_body = json.dumps({"key": entitlement.plaintext})
    secret = env["STRIPE_WEBHOOK_SECRET"]
    body = json.dumps({"amount": "49.99", "currency": "EUR", "description": "Pro plan, monthly",
                       "customer_email": "buyer@example.com", "metadata": {"order_id": "A-1042"}})

    def call(i: int):
        if args.path == "create_session":
            return client.post("/create_session", body, content_type="application/json",
                               HTTP_X_API_KEY=issued.plaintext)
        if args.path == "webhook":
            event = stripe_provider.test_event(session_id=str(sessions[i]), event_type="payment_intent.succeeded",
                                               amount=Decimal("49.99"), currency="EUR")
            raw = json.dumps(event, separators=(",", ":"))
            return client.post("/webhooks/stripe", raw, content_type="application/json",
                               HTTP_STRIPE_SIGNATURE=stripe_provider.sign(raw, secret=secret))
        if args.path == "status":
            return client.get(f"/session/{sessions[i]}/status")
        if args.path == "verify":
            return client.post("/keys/verify", verify_body, content_type="application/json",
                               HTTP_X_API_KEY=issued.plaintext)
        if args.path == "insert":
            return client.post("/_bench/insert", json.dumps({"name": "x", "amount": "1"}),
                               content_type="application/json")
        return client.get(f"/_bench/read/{rows[i % 10].pk}")

    for i in range(10):  # warm up
        call(n + 10 + i - 10 if args.path == "webhook" else i)
    with CaptureQueriesContext(connection) as queries:
        response = call(n + 10)
    print(f"status {response.status_code}: {response.content[:200]!r}")
    print(f"{len(queries.captured_queries)} SQL statements in one request:")
    for q in queries.captured_queries:
        print("   ", q["sql"][:160])
    if args.gc_freeze:
        import gc

        gc.collect()
        gc.freeze()
    if args.time_only:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
            backend, wal_start = cursor.fetchone()
        pg_cpu = _proc_cpu_seconds(backend)
        cpu, start = time.process_time(), time.perf_counter()
        walls = []
        for i in range(n):
            t = time.perf_counter()
            call(i)
            walls.append((time.perf_counter() - t) * 1000)
        walls.sort()
        print(f"{n} requests: {(time.process_time() - cpu) / n * 1000:.2f} ms CPU, "
              f"{(time.perf_counter() - start) / n * 1000:.2f} ms wall each; "
              f"p50 {walls[n // 2]:.2f} ms, p99 {walls[int(n * 0.99)]:.2f} ms, max {walls[-1]:.2f} ms")
        if pg_cpu is not None:
            # The database's own CPU per request: under load it shares the same two cores.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_start])
                wal_bytes = cursor.fetchone()[0]
            print(f"PostgreSQL backend: {(_proc_cpu_seconds(backend) - pg_cpu) / n * 1000:.2f} ms CPU each, "
                  f"{wal_bytes / n / 1024:.1f} KiB of WAL each")
        return 0
    if args.cprofile:
        import cProfile
        import pstats

        cpu = time.process_time()
        start = time.perf_counter()
        with cProfile.Profile() as prof:
            for i in range(n):
                call(i)
        elapsed = time.perf_counter() - start
        print(f"{n} requests: {(time.process_time() - cpu) / n * 1000:.2f} ms CPU, {elapsed / n * 1000:.2f} ms wall each")
        if os.environ.get("PROFILE_DUMP"):
            prof.dump_stats(os.environ["PROFILE_DUMP"])
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(int(os.environ.get("PROFILE_CUMULATIVE_ROWS", "60")))
        return 0
    profiler = Profiler(interval=0.0005)
    start = time.perf_counter()
    with profiler:
        for i in range(n):
            call(i)
    elapsed = time.perf_counter() - start
    print(f"{n} requests in {elapsed:.2f} s: {elapsed / n * 1000:.2f} ms each (single process, no network)")
    kinds = Counter(q["sql"].split()[0] for q in queries.captured_queries)
    print("statement kinds:", dict(kinds))
    if args.html:
        args.html.write_text(profiler.output_html())
        print(f"wrote {args.html}")
    else:
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    _ = secrets
    return 0


if __name__ == "__main__":
    sys.exit(main())
