"""`make soak`: many payments, every event delivered out of order and more than once, and the
worker killed halfway. Nothing may be lost and nothing doubled.

    make soak                                  # 300 sessions
    make soak SOAK_ARGS="--sessions 60 --wait 30"

Against PostgreSQL and Redis on 127.0.0.1 it starts the service as the Procfile does (gunicorn
with its `web:` command and 2 sync workers; one Celery worker with its `worker:` command, no
beat) and a real SMTP server (aiosmtpd). It creates N sessions for one merchant, each with its
own customer email, and sends each: `payment_intent.processing`, one `payment_intent.succeeded`
three times (the same signed event), a second success with another event and PaymentIntent id,
and a `payment_intent.payment_failed`. All deliveries are shuffled together and sent at
concurrency 16, signed, to POST /webhooks/stripe. Once half of them are answered the worker's
whole process group gets SIGKILL, as a crashed container would, and a new worker starts 3 s
later. Then it waits (bounded) until every paid session is fulfilled and checks:

- every delivery answered 200, every distinct event stored exactly once;
- every session paid, exactly once (one `session.paid` audit row each);
- one invoice per paid session, numbers gapless;
- one merchant notification per payment and one receipt per session, counted at the SMTP
  server (and in EmailRecord). SMTP has no idempotency key: a run killed after the server took
  a message and before it recorded the send has it sent again by the next run, with the same
  Message-ID. That second copy is counted and allowed only for the runs the kill interrupted;
  a double anywhere else fails the soak;
- the audit chains intact (`verify_audit`);

and prints the figures, among them the time from the worker's restart to the fulfilment of the
runs it interrupted, and to the last fulfilment.
It exits 1 if any check fails.

It uses a database of its own (`payments_soak`, dropped and recreated; host, port and user come
from DATABASE_URL when set) and a Redis database of its own (db 11 on the host of
REDIS_TEST_URL or REDIS_URL), with a queue name of its own, so it never takes another run's
tasks; it empties nothing there but its own queue. Every process it starts runs in its own
session and is stopped by its process group, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import email.parser
import http.client
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fulfilment import percentile  # noqa: E402 - after the path is set
from bench.run import (  # noqa: E402
    BIN,
    MailSink,
    Service,
    free_port,
    gunicorn_argv,
    prepare_database,
    service_env,
    wait_http,
)

DEFAULT_DATABASE_NAME = "payments_soak"
DEFAULT_REDIS_DB = 11
MERCHANT_EMAIL = "merchant@soak.test"
SOAK_BUYERS_INBOX = "buyers@soak.test"
AMOUNT = Decimal("49.99")
CONCURRENCY = 16
WEB_WORKERS = 2
RESTART_AFTER_S = 3.0
# Upper bounds on every wait, whatever the size of the run.
START_DEADLINE_S = 60.0
DELIVERY_TIMEOUT_S = 30.0
# Slower than this, the service is broken rather than slow: the run stops.
MIN_DELIVERIES_PER_S = 20
RELAY_GRACE_S = 10.0
# Every event is signed before the first is sent; a larger run could outlast the signature tolerance.
MAX_SESSIONS = 2000


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- where it runs


def database_url(name: str) -> str:
    """DATABASE_URL's server and credentials (when it names a PostgreSQL), with our own database."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"Unsafe database name {name!r}")
    given = os.environ.get("DATABASE_URL", "")
    url = urlparse(given if given.startswith(("postgres://", "postgresql://")) else "postgres://postgres@127.0.0.1:5432/")
    return urlunparse(url._replace(scheme="postgres", path=f"/{name}", query=""))


def redis_url(db: int) -> str:
    """The suite's (or the service's) Redis server, with a database number of our own."""
    given = os.environ.get("REDIS_TEST_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    return urlunparse(urlparse(given)._replace(path=f"/{db}"))


def loopback_only(url: str) -> None:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"The soak runs against 127.0.0.1 only, not {host!r}")


def worker_argv(name: str) -> list[str]:
    """The Procfile's `worker:` command, with a node name of its own so that only it answers our pings."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("worker:"))
    argv = shlex.split(line.split(":", 1)[1])
    argv[0] = str(BIN / argv[0])
    return [*argv, "-n", name]


# ---------------------------------------------------------------- deliveries


@dataclass
class Delivery:
    session_id: str
    event_id: str
    event_type: str
    body: str
    signature: str
    status: int = 0
    outcome: str = ""
    error: str = ""
    elapsed_s: float = 0.0


def build_deliveries(session_ids: list[str], secret: str, rng: random.Random) -> list[Delivery]:
    """Six deliveries per session, four distinct events; the three copies carry one signature."""
    from sessions_app.providers import stripe_provider

    def make(sid: str, event_type: str) -> Delivery:
        event = stripe_provider.test_event(session_id=sid, event_type=event_type, amount=AMOUNT, currency="EUR")
        body = json.dumps(event, separators=(",", ":"))
        return Delivery(sid, event["id"], event_type, body, stripe_provider.sign(body, secret=secret))

    deliveries: list[Delivery] = []
    for sid in session_ids:
        success = make(sid, "payment_intent.succeeded")
        deliveries += [
            make(sid, "payment_intent.processing"),
            success,
            dataclasses.replace(success),
            dataclasses.replace(success),
            make(sid, "payment_intent.succeeded"),  # another charge: its own event and PaymentIntent id
            make(sid, "payment_intent.payment_failed"),
        ]
    rng.shuffle(deliveries)
    return deliveries


def deliver(port: int, delivery: Delivery) -> None:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DELIVERY_TIMEOUT_S)
    try:
        conn.request("POST", "/webhooks/stripe", body=delivery.body.encode(), headers={
            "Content-Type": "application/json", "Stripe-Signature": delivery.signature})
        response = conn.getresponse()
        answer = response.read()
        delivery.status = response.status
        with contextlib.suppress(ValueError, AttributeError):
            delivery.outcome = str(json.loads(answer).get("outcome", ""))
        if response.status != 200:
            delivery.error = answer[:200].decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        delivery.error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        delivery.elapsed_s = time.monotonic() - start


class Sender(threading.Thread):
    """Sends every delivery once at a fixed concurrency; `halfway` is set when half are answered."""

    def __init__(self, port: int, deliveries: list[Delivery], concurrency: int) -> None:
        super().__init__(name="soak-sender", daemon=True)
        self.port, self.deliveries, self.concurrency = port, deliveries, concurrency
        self.halfway = threading.Event()
        self.done = 0
        self.started_at = self.finished_at = 0.0
        self._lock = threading.Lock()

    def _one(self, delivery: Delivery) -> None:
        deliver(self.port, delivery)
        with self._lock:
            self.done += 1
            if self.done >= len(self.deliveries) // 2:
                self.halfway.set()

    def run(self) -> None:
        self.started_at = time.time()
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="soak-post") as pool:
                list(pool.map(self._one, self.deliveries))
        finally:
            self.finished_at = time.time()
            self.halfway.set()  # never leave the main thread waiting on a run that stopped early


# ---------------------------------------------------------------- the run


@dataclass
class Check:
    name: str
    ok: bool
    value: str


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="payments-soak-")))
    services: list[Service] = field(default_factory=list)
    mail: MailSink | None = None
    queue: str = field(default_factory=lambda: f"soak-{secrets.token_hex(4)}")
    times: dict[str, float] = field(default_factory=dict)
    at_kill: dict[str, Any] = field(default_factory=dict)
    relay_used: bool = False

    # -- processes

    def start_worker(self, number: int) -> tuple[Service, str]:
        name = f"{self.queue}-{number}@127.0.0.1"
        worker = Service(f"celery-{number}", worker_argv(name), self.worker_env, self.workdir)
        self.services.append(worker)
        return worker, name

    def wait_worker(self, worker: Service, name: str) -> None:
        from payments_site.celery import app

        end = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < end:
            if not worker.alive():
                raise RuntimeError(f"{worker.name} exited:\n{worker.tail()}")
            if app.control.ping(destination=[name], timeout=0.5):
                return
        raise RuntimeError(f"{worker.name} did not answer a ping in {START_DEADLINE_S:.0f} s:\n{worker.tail()}")

    def relay_since(self) -> float | None:
        """When the backend that holds the relay's lock connected (epoch seconds), if one does."""
        from django.db import connection

        try:
            from invoices_app.relay import RELAY_LOCK
        except ImportError:
            return None  # a hand-off without the relay
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT extract(epoch FROM a.backend_start) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                [RELAY_LOCK >> 32, RELAY_LOCK & 0xFFFFFFFF])
            row = cursor.fetchone()
        return float(row[0]) if row else None

    def stop_all(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        self.services.clear()
        if self.mail is not None:
            with contextlib.suppress(Exception):
                self.mail.stop()
        with contextlib.suppress(Exception):
            self.forget_queue()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if self.args.drop_database:
            with contextlib.suppress(Exception):
                import psycopg

                admin = urlparse(self.database_url)._replace(path="/postgres").geturl()
                with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.args.database_name}" WITH (FORCE)')

    def forget_queue(self) -> None:
        """Remove this run's queue from Redis (and the messages a killed worker left unacked)."""
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter(match=f"{self.queue}*", count=500):
                client.delete(key)
            client.delete(f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}")
            for key in client.scan_iter(match="_kombu.binding.*", count=500):
                stale = [m for m in client.smembers(key) if self.queue.encode() in m]
                if stale:
                    client.srem(key, *stale)
            for tag, raw in client.hscan_iter("unacked", count=500):
                with contextlib.suppress(ValueError, TypeError, IndexError):
                    if json.loads(raw)[2] == self.queue:
                        client.hdel("unacked", tag)
                        client.zrem("unacked_index", tag)
        finally:
            client.close()

    # -- setup

    def setup(self) -> tuple[Any, list[str]]:
        args = self.args
        self.database_url, self.redis_url = database_url(args.database_name), args.redis_url or redis_url(args.redis_db)
        for url in (self.database_url, self.redis_url):
            loopback_only(url)
        self.mail = MailSink()
        self.port = free_port()
        env = service_env(database_url=self.database_url, redis_url=self.redis_url, data_dir=self.workdir / "data",
                          web_port=self.port, smtp_port=self.mail.port)
        # The product's own settings (not the bench's baseline URLs), and a queue nobody else consumes.
        env.update({"DJANGO_SETTINGS_MODULE": "payments_site.settings", "CELERY_TASK_DEFAULT_QUEUE": self.queue})
        self.env = env
        self.worker_env = {**env, "LOG_LEVEL": "INFO"}  # its log is what explains a slow fulfilment
        log(f"database {args.database_name} (recreated), redis {self.redis_url} (queue {self.queue}), "
            f"work dir {self.workdir}")
        prepare_database(self.database_url)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                       timeout=300)
        os.environ.update(env)
        import django

        django.setup()
        from keys_app.services import account_update, merchant_create
        from sessions_app.services import session_create

        merchant, issued = merchant_create(name="Soak Demo Shop", email=MERCHANT_EMAIL, actor="cli:soak")
        # Test mode mails customers only at addresses the merchant lists: the buyers share its test inbox
        # (receipts are counted by Message-ID, one per session).
        account_update(account=merchant, actor="cli:soak", test_email_recipients=[SOAK_BUYERS_INBOX])
        ids = [str(session_create(account=merchant, api_key=issued.api_key, amount=AMOUNT, currency="EUR",
                                  description="Pro plan, monthly", customer_email=SOAK_BUYERS_INBOX).pk)
               for _ in range(args.sessions)]
        return merchant, ids

    # -- main

    def run(self) -> dict[str, Any]:
        args = self.args
        self.times["start"] = t0 = time.time()
        merchant, session_ids = self.setup()
        web = Service("gunicorn", gunicorn_argv(port=self.port, workers=WEB_WORKERS), self.env, self.workdir)
        self.services.append(web)
        worker, name = self.start_worker(1)
        wait_http(f"http://127.0.0.1:{self.port}/session/{session_ids[0]}/status", deadline_s=START_DEADLINE_S,
                  service=web)
        self.wait_worker(worker, name)
        # A payment made before the relay listens is the restart's case, not the start's: give it
        # time to take its lock. A hand-off without the relay's lock (a durable queue) has none to wait for.
        end = time.monotonic() + RELAY_GRACE_S
        while self.relay_since() is None and time.monotonic() < end:
            time.sleep(0.1)
        self.relay_used = self.relay_since() is not None
        log(f"{len(session_ids)} sessions; gunicorn x{WEB_WORKERS} on 127.0.0.1:{self.port}; worker {name}"
            + ("" if self.relay_used else f"; no relay lock seen within {RELAY_GRACE_S:g} s"))

        rng = random.Random(args.seed)
        deliveries = build_deliveries(session_ids, self.env["STRIPE_WEBHOOK_SECRET"], rng)
        sender = Sender(self.port, deliveries, CONCURRENCY)
        self.times["deliveries"] = time.time()
        sender.start()
        deliveries_end = time.monotonic() + 60 + len(deliveries) / MIN_DELIVERIES_PER_S
        if not sender.halfway.wait(timeout=deliveries_end - time.monotonic()):
            raise RuntimeError("half of the deliveries were not answered in time")
        killed_after = sender.done
        os.killpg(worker.pid, signal.SIGKILL)
        worker.proc.wait(timeout=30)
        self.times["killed"] = time.time()
        self.at_kill = self.fulfilment_progress(session_ids)
        log(f"worker SIGKILLed (process group {worker.pid}) after {killed_after} of {len(deliveries)} deliveries; "
            f"{self.at_kill['fulfilled']} fulfilled, {self.at_kill['in_progress']} in progress")
        time.sleep(RESTART_AFTER_S)
        worker, name = self.start_worker(2)
        self.times["restarted"] = time.time()
        log("worker restarted")
        self.watch_restart(worker, name, sender, deliveries_end=deliveries_end)
        if sender.is_alive():
            raise RuntimeError("the deliveries did not finish in time")
        log(f"{len(deliveries)} deliveries sent; waiting up to {args.wait:g} s for every paid session's fulfilment")
        self.times["deliveries_done"] = sender.finished_at
        self.wait_fulfilled(merchant, session_ids)
        self.times["end"] = time.time()
        return self.report(merchant, session_ids, deliveries, sender, killed_after, t0)

    def fulfilment_progress(self, session_ids: list[str]) -> dict[str, int]:
        from invoices_app.models import Fulfilment

        rows = Fulfilment.objects.filter(session_id__in=session_ids)
        # attempts counts the runs that began: begun, not finished, is what a kill interrupts.
        interrupted = list(rows.filter(completed_at__isnull=True, attempts__gt=0).values_list("session_id", flat=True))
        return {"fulfilled": rows.filter(completed_at__isnull=False).count(), "in_progress": len(interrupted),
                "interrupted_ids": interrupted}

    def watch_restart(self, worker: Service, name: str, sender: Sender, *, deliveries_end: float) -> None:
        """Until the deliveries are done: note when the new worker answers and when its relay listens.

        Neither is required here (a worker that never comes back shows as unfulfilled sessions),
        so they are watched for START_DEADLINE_S at most.
        """
        from payments_site.celery import app

        watch_end = time.monotonic() + START_DEADLINE_S
        expected = {"worker_answering", "relay_back"} if self.relay_used else {"worker_answering"}
        while time.monotonic() < deliveries_end:
            watching = time.monotonic() < watch_end and worker.alive() and not expected <= set(self.times)
            if not sender.is_alive() and not watching:
                return
            if watching and "worker_answering" not in self.times and app.control.ping(destination=[name], timeout=0.2):
                self.times["worker_answering"] = time.time()
            if watching and "relay_back" not in self.times:
                since = self.relay_since()
                # The lock held by a connection made after the kill: the new worker's relay.
                if since is not None and since > self.times["killed"]:
                    self.times["relay_back"] = time.time()
            time.sleep(0.1)

    def wait_fulfilled(self, merchant, session_ids: list[str]) -> None:
        from invoices_app.models import Fulfilment
        from sessions_app.models import PaymentSession, Status

        end = time.monotonic() + self.args.wait
        paid = PaymentSession.objects.filter(account=merchant, status=Status.PAID)
        while True:
            missing = paid.exclude(pk__in=Fulfilment.objects.filter(completed_at__isnull=False).values("pk")).count()
            if missing == 0 or time.monotonic() > end:
                return
            time.sleep(0.25)

    # -- checks

    def report(self, merchant, session_ids: list[str], deliveries: list[Delivery], sender: Sender,
               killed_after: int, t0: float) -> dict[str, Any]:

        from audit.models import AuditEvent
        from audit.services import audit_verify
        from invoices_app.models import EmailRecord, Fulfilment, Invoice
        from sessions_app.models import PaymentSession, Status, WebhookEvent

        n = len(session_ids)
        statuses = Counter(PaymentSession.objects.filter(account=merchant).values_list("status", flat=True))
        paid_ids = {str(pk) for pk in PaymentSession.objects.filter(account=merchant, status=Status.PAID)
                    .values_list("pk", flat=True)}
        checks: list[Check] = []

        answered = sum(1 for d in deliveries if d.status == 200)
        codes = Counter(d.status for d in deliveries if d.status != 200)
        checks.append(Check("every delivery answered 200", answered == len(deliveries),
                            f"{answered}/{len(deliveries)}" + (f" (others: {dict(codes)})" if codes else "")))

        expected_events = {d.event_id for d in deliveries}
        stored = Counter(WebhookEvent.objects.filter(provider="stripe").values_list("event_id", flat=True))
        doubled_events = sum(1 for c in stored.values() if c > 1)
        checks.append(Check("every distinct event stored exactly once",
                            set(stored) == expected_events and doubled_events == 0,
                            f"{len(stored)} stored of {len(expected_events)}, doubled {doubled_events}, "
                            f"unknown {len(set(stored) - expected_events)}"))

        paid_rows = Counter(str(s) for s in AuditEvent.objects.filter(
            action="session.paid", subject_type="payment_session").values_list("subject_id", flat=True))
        twice = sum(1 for c in paid_rows.values() if c > 1)
        checks.append(Check("every session paid, exactly once", len(paid_ids) == n and twice == 0
                            and set(paid_rows) == paid_ids,
                            f"{len(paid_ids)}/{n} paid ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))});"
                            f" session.paid rows {sum(paid_rows.values())}, twice {twice}"))

        invoices = list(Invoice.objects.filter(account=merchant).values_list("session_id", "year", "sequence"))
        per_session = Counter(str(s) for s, _, _ in invoices)
        gaps = 0
        for year in {y for _, y, _ in invoices}:
            seqs = sorted(s for _, y, s in invoices if y == year)
            gaps += int(seqs != list(range(1, len(seqs) + 1)))
        checks.append(Check("one invoice per paid session, numbers gapless",
                            set(per_session) == paid_ids and max(per_session.values(), default=1) == 1 and not gaps,
                            f"{len(invoices)} invoices for {len(paid_ids)} paid; "
                            f"{'gapless' if not gaps else 'GAPS'}"))

        fulfilled = set(map(str, Fulfilment.objects.filter(session_id__in=session_ids, completed_at__isnull=False)
                            .values_list("session_id", flat=True)))
        checks.append(Check(f"every paid session fulfilled (waited at most {self.args.wait:g} s)",
                            bool(paid_ids) and paid_ids <= fulfilled, f"{len(fulfilled & paid_ids)}/{len(paid_ids)}"))

        # At the SMTP server: Message-IDs name the session and the kind (invoices_app.services.delivery._message_id).
        receipts: Counter[str] = Counter()
        to_merchant: Counter[str] = Counter()
        parser = email.parser.BytesHeaderParser()
        for _when, rcpts, content in list(self.mail.received):
            found = re.match(r"<(receipt|merchant_paid)\.([0-9a-f-]{36})@", parser.parsebytes(content)["Message-ID"] or "")
            if found and found[1] == "receipt":
                receipts[found[2]] += 1
            elif found and MERCHANT_EMAIL in rcpts:
                to_merchant[found[2]] += 1
        records = Counter(EmailRecord.objects.filter(session_id__in=session_ids, sent_at__isnull=False)
                          .values_list("kind", flat=True))
        # SMTP has no idempotency key: a worker killed after the server took a message and before
        # it recorded the send makes the next run send it again, with the same Message-ID (mail
        # clients fold such copies). That window is inside a run the kill interrupted, so a
        # second copy is tolerated there, one at most, and nowhere else.
        interrupted = {str(pk) for pk in self.at_kill["interrupted_ids"]}

        def doubles(counter: Counter[str]) -> tuple[int, int]:
            """(sessions sent twice inside an interrupted run's window, sessions doubled anywhere else)."""
            twice = {sid for sid, count in counter.items() if count > 1}
            resent = {sid for sid in twice & interrupted if counter[sid] == 2}
            return len(resent), len(twice - resent)

        merchant_resent, notified_twice = doubles(to_merchant)
        checks.append(Check("one merchant notification per payment",
                            set(to_merchant) == paid_ids and notified_twice == 0
                            and records[EmailRecord.Kind.MERCHANT_PAID] == len(paid_ids),
                            f"{sum(to_merchant.values())} emails for {len(paid_ids)} payments, doubled {notified_twice}, "
                            f"resent by a killed run {merchant_resent}; EmailRecord {records[EmailRecord.Kind.MERCHANT_PAID]}"))
        receipts_resent, doubled = doubles(receipts)
        checks.append(Check("no doubled receipt", doubled == 0,
                            f"{doubled} sessions with more than one; {receipts_resent} resent by a run the kill "
                            f"interrupted (same Message-ID, of {len(interrupted)} interrupted)"))
        checks.append(Check("one receipt per session", set(receipts) == set(session_ids) and doubled == 0,
                            f"{len(receipts)}/{n} sessions have one, {sum(receipts.values())} receipts;"
                            f" EmailRecord {records[EmailRecord.Kind.RECEIPT]}"))

        breaks = audit_verify()
        checks.append(Check("audit chains intact (verify_audit)", not breaks,
                            "intact" if not breaks else f"{len(breaks)} breaks, first: {breaks[0]}"))

        # Payments that committed while no relay listened: the hand-off has to survive these.
        relay_back = datetime.fromtimestamp(self.times.get("relay_back", self.times["end"]), UTC)
        paid_unheard = PaymentSession.objects.filter(
            account=merchant, status=Status.PAID, paid_at__gte=datetime.fromtimestamp(self.times["killed"], UTC),
            paid_at__lt=relay_back).count()
        last_done = Fulfilment.objects.filter(session_id__in=session_ids, completed_at__isnull=False).order_by(
            "-completed_at").values_list("completed_at", flat=True).first()
        restarted = self.times["restarted"]
        # When the runs the kill interrupted were finished: the hand-off's own latency, apart from
        # the backlog that one worker then works through.
        interrupted_done = Fulfilment.objects.filter(
            session_id__in=self.at_kill["interrupted_ids"], completed_at__isnull=False).order_by(
            "-completed_at").values_list("completed_at", flat=True).first()
        latencies = [d.elapsed_s * 1000 for d in deliveries]
        outcomes = Counter(d.outcome or "-" for d in deliveries)
        rel = {k: round(v - t0, 1) for k, v in self.times.items()}
        figures = {
            "sessions": n,
            "deliveries": len(deliveries),
            "distinct_events": len(expected_events),
            "concurrency": CONCURRENCY,
            "statuses": dict(statuses),
            "outcomes": dict(outcomes),
            "deliveries_s": round(sender.finished_at - sender.started_at, 2),
            "deliveries_per_s": round(len(deliveries) / max(sender.finished_at - sender.started_at, 1e-9), 1),
            "delivery_p50_ms": round(statistics.median(latencies), 1),
            "delivery_p99_ms": round(percentile(latencies, 0.99), 1),
            "killed_after_deliveries": killed_after,
            "fulfilled_before_kill": self.at_kill["fulfilled"],
            "in_progress_at_kill": self.at_kill["in_progress"],
            "paid_while_no_relay": paid_unheard,
            "paid": len(paid_ids),
            "fulfilled": len(fulfilled & paid_ids),
            "receipts": sum(receipts.values()),
            "merchant_emails": sum(to_merchant.values()),
            # Second copies sent by the run after a killed one, inside SMTP's one window.
            "receipts_resent_by_killed_runs": receipts_resent,
            "merchant_emails_resent_by_killed_runs": merchant_resent,
            "invoices": len(invoices),
            "restart_to_last_fulfilment_s": (round(last_done.timestamp() - restarted, 2) if last_done else None),
            "restart_to_interrupted_fulfilled_s": (round(interrupted_done.timestamp() - restarted, 2)
                                                   if interrupted_done else None),
            "restart_to_relay_listening_s": (round(self.times["relay_back"] - restarted, 2)
                                             if "relay_back" in self.times else None),
            "restart_to_worker_answering_s": (round(self.times["worker_answering"] - restarted, 2)
                                              if "worker_answering" in self.times else None),
            "timeline_s": rel,
            "total_s": round(self.times["end"] - t0, 1),
        }
        return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "ok": all(c.ok for c in checks),
                "config": {"sessions": n, "concurrency": CONCURRENCY, "web_workers": WEB_WORKERS,
                           "restart_after_s": RESTART_AFTER_S, "wait_s": self.args.wait, "seed": self.args.seed,
                           "worker": " ".join(worker_argv("…")[1:-2])},
                "checks": [c.__dict__ for c in checks], "figures": figures}


# ---------------------------------------------------------------- output


def print_result(result: dict[str, Any]) -> None:
    f = result["figures"]
    t = f["timeline_s"]

    def secs(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    def at(key: str) -> str:
        return f"+{t[key]:.1f} s" if key in t else "not seen"

    lines = [
        "",
        f"Soak, {result['date']}: {f['sessions']} sessions, {f['deliveries']:,} deliveries "
        f"({f['distinct_events']:,} distinct events) at c={f['concurrency']}, worker SIGKILLed after "
        f"{f['killed_after_deliveries']:,} and restarted {RESTART_AFTER_S:g} s later",
        "-" * 100,
    ]
    for check in result["checks"]:
        lines.append(f"  [{'ok  ' if check['ok'] else 'FAIL'}] {check['name']:<52} {check['value']}")
    lines += [
        "-" * 100,
        f"  deliveries        {f['deliveries_s']:.1f} s, {f['deliveries_per_s']:,.0f}/s, p50 {f['delivery_p50_ms']:.0f} ms,"
        f" p99 {f['delivery_p99_ms']:.0f} ms; outcomes "
        + ", ".join(f"{k} {v}" for k, v in sorted(f["outcomes"].items())),
        "  sessions          " + ", ".join(f"{k} {v}" for k, v in sorted(f["statuses"].items()))
        + f"; fulfilled {f['fulfilled']}/{f['paid']} paid",
        f"  emails            {f['receipts']} receipts, {f['merchant_emails']} to the merchant;"
        f" {f['invoices']} invoices",
        f"  timeline          deliveries from +{t['deliveries']:.1f} s, worker killed +{t['killed']:.1f} s,"
        f" restarted +{t['restarted']:.1f} s, answering {at('worker_answering')}, relay listening {at('relay_back')},"
        f" deliveries done +{t['deliveries_done']:.1f} s",
        f"  at the kill       {f['fulfilled_before_kill']} fulfilled, {f['in_progress_at_kill']} in progress;"
        f" {f['paid_while_no_relay']} paid while no relay listened",
        f"  restart -> runs interrupted by the kill fulfilled  {secs(f['restart_to_interrupted_fulfilled_s'])}",
        f"  restart -> last fulfilment  {secs(f['restart_to_last_fulfilment_s'])}"
        + ("" if f["fulfilled"] == f["paid"] else f"  ({f['paid'] - f['fulfilled']} paid sessions never fulfilled)"),
        f"  total run time    {f['total_s']:.1f} s",
        "",
        "PASS" if result["ok"] else "FAIL: " + "; ".join(c["name"] for c in result["checks"] if not c["ok"]),
    ]
    print("\n".join(lines), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=300, help="sessions to pay (default 300; CI runs 60)")
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for every fulfilment (default 120)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the shuffle (default: a new one)")
    parser.add_argument("--database-name", default=os.environ.get("SOAK_DATABASE_NAME", DEFAULT_DATABASE_NAME),
                        help=f"dropped and recreated (default {DEFAULT_DATABASE_NAME}); server and user from DATABASE_URL")
    parser.add_argument("--drop-database", action="store_true", help="drop the database at the end")
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB,
                        help=f"Redis database number (default {DEFAULT_REDIS_DB}) on REDIS_TEST_URL's/REDIS_URL's server")
    parser.add_argument("--redis-url", default=os.environ.get("SOAK_REDIS_URL"), help="overrides --redis-db")
    parser.add_argument("--output", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= MAX_SESSIONS:
        parser.error(f"--sessions must be between 1 and {MAX_SESSIONS}")
    if not 0 < args.wait <= 600:
        parser.error("--wait must be between 0 and 600 s")
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak = Soak(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    result: dict[str, Any] | None = None
    try:
        result = soak.run()
    except (RuntimeError, OSError) as exc:
        log(f"the soak could not run: {exc}")
    finally:
        soak.stop_all()
    if result is None:
        log(f"logs kept in {soak.workdir}")
        return 2
    print_result(result)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2, default=str))
        log(f"wrote {args.output}")
    if result["ok"]:
        shutil.rmtree(soak.workdir, ignore_errors=True)
    else:
        log(f"logs kept in {soak.workdir}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
