"""Merchant webhook deliveries per second: one worker against a local receiver that answers 200,
held against the same worker's rate of no-op Celery tasks in the same run (target >= 0.25x).

Both are measured the same way: the work is queued while the worker does not consume, then the
worker consumes and the clock runs until the last item is done.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOOP_TASKS = 2000
DELIVERIES = 1000
TARGET_RATIO = 0.25


class Receiver:
    """A merchant's endpoint on 127.0.0.1 that answers every delivery 200 (not verified here:
    the tests verify signatures; this measures the sender)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without this, Nagle and the sender's
            # delayed ACK hold every answer on a kept-alive connection for 40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def endpoint_for(account_id: int, url: str):
    """One enabled endpoint that wants every event (what `make bench` runs the hot paths with)."""
    from events_app.services import endpoint_create

    endpoint, _secret = endpoint_create(account_id=account_id, mode="test", url=url, event_types=["*"],
                                        actor="bench")
    return endpoint


def _queue_length(bench) -> int:
    import redis

    from payments_site.celery import app

    queue = app.conf.task_default_queue or "celery"
    client = redis.Redis.from_url(bench.args.redis_url)
    try:
        return sum(client.llen(key) for key in client.keys(f"{queue}*") if client.type(key) == b"list")
    finally:
        client.close()


def _wait(predicate, *, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)  # a lighter look: the clock's error is at most this, over many seconds
    return False


def measure(bench) -> dict[str, Any]:
    from django.utils import timezone

    from events_app.models import Delivery, Event
    from events_app.services import endpoint_update
    from keys_app.services import merchant_create
    from payments_site.celery import app

    # Deliveries left over from the hot paths' load are not part of this figure.
    for endpoint in getattr(bench, "webhook_endpoints", []):
        endpoint_update(endpoint=endpoint, actor="bench", enabled=False)
    bench.celery_consume(False)
    bench.celery_purge()

    # No-op tasks: Celery's own `celery.accumulate` with no arguments does nothing.
    for _ in range(NOOP_TASKS):
        app.send_task("celery.accumulate")
    bench.celery_consume(True)
    start = time.perf_counter()
    _wait(lambda: _queue_length(bench) == 0, timeout=300)
    noop_s = time.perf_counter() - start
    bench.celery_consume(False)

    receiver = Receiver()
    try:
        account, _ = merchant_create(name="Deliveries Ltd", email="ops@deliveries.test")
        endpoint = endpoint_for(account.pk, receiver.url)
        now = timezone.now()
        Event.objects.bulk_create([Event(account_id=account.pk, mode="test", type="session.paid",
                                         object_id=f"bench-{i}", data={"object": "session", "status": "paid"},
                                         created_at=now) for i in range(DELIVERIES)], batch_size=500)
        # The worker's dispatcher fans them out and queues them while the worker does not consume.
        handed = _wait(lambda: Delivery.objects.filter(endpoint=endpoint, queued_until__isnull=False).count()
                       >= DELIVERIES, timeout=120)
        bench.celery_consume(True)
        start = time.perf_counter()
        done = _wait(lambda: Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.SUCCEEDED).count()
                     >= DELIVERIES, timeout=600)
        deliveries_s = time.perf_counter() - start
        succeeded = Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.SUCCEEDED).count()
        bench.celery_consume(False)
    finally:
        receiver.stop()
    noop_per_s = NOOP_TASKS / noop_s
    per_s = succeeded / deliveries_s
    return {"noop_tasks": NOOP_TASKS, "noop_tasks_per_s": round(noop_per_s, 1), "deliveries": succeeded,
            "deliveries_per_s": round(per_s, 1), "ratio": round(per_s / noop_per_s, 3),
            "complete": bool(handed and done)}
