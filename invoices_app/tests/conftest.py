"""Fixtures for fulfilment tests: paid sessions, a real SMTP server (aiosmtpd), the real Redis
broker, and real `celery worker` processes pointed at the pytest database."""

from __future__ import annotations

import asyncio
import base64
import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from email import policy
from pathlib import Path

import pytest
import redis
from aiosmtpd.controller import Controller

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/3")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float = 30.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


# ---------------------------------------------------------------- sessions

# The inboxes these tests read. Test mode mails a customer only at the merchant's own address or
# at one it lists (test_email_recipients); tests of that rule are in test_test_mode_mail.py.
TEST_INBOXES = ["buyer@example.com", "buyer@example.test", "on@example.com", "off@example.com", "ann@example.com",
                "third@example.com", "someone@example.com", "other@example.com"]


@pytest.fixture
def merchant(merchant):
    merchant.test_email_recipients = TEST_INBOXES
    merchant.save(update_fields=["test_email_recipients"])
    return merchant


def create_session(merchant, *, amount: str = "99.99", currency: str = "EUR", email: str = "buyer@example.com",
                   description: str = "Pro plan, 1 year", **extra):
    from sessions_app.services import session_create

    return session_create(account=merchant, api_key=merchant.api_key, amount=Decimal(amount), currency=currency,
                          customer_email=email, description=description, **extra)


def paid_event_body(session, *, event_type: str = "payment_intent.succeeded") -> str:
    from sessions_app.providers import stripe_provider

    return json.dumps(stripe_provider.test_event(session_id=str(session.pk), event_type=event_type,
                                                 amount=session.amount, currency=session.currency))


def post_webhook(client, body: str):
    from sessions_app.providers import stripe_provider

    return client.post("/webhooks/stripe", body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))


def mark_paid(session) -> None:
    """Apply a verified paid event through the lifecycle service (no HTTP)."""
    from sessions_app.lifecycle import payment_event_apply
    from sessions_app.providers import stripe_provider

    payment_event_apply(stripe_provider.parse(paid_event_body(session).encode()))
    session.refresh_from_db()


@pytest.fixture
def paid_session(merchant):
    def make(**kwargs):
        session = create_session(merchant, **kwargs)
        mark_paid(session)
        return session

    return make


# ---------------------------------------------------------------- SMTP


@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps every accepted message; it can hold the next one."""

    port: int = 0
    messages: list = field(default_factory=list)
    received_at: list = field(default_factory=list)
    hold_next: bool = False
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope):
        if self.hold_next:
            self.hold_next = False
            self.entered.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
            # The sender died while we held its message: it was never accepted.
            return "451 4.3.0 Aborted while held"
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.received_at.append(time.time())
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in str(m["To"])]


@pytest.fixture
def smtp_server():
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    sink.release.set()
    controller.stop()


# ---------------------------------------------------------------- broker and workers


def use_broker(url: str | None, queue: str = "celery") -> None:
    """Point this process's Celery app at a broker and queue (None: back to eager, in-process)."""
    from kombu import pools

    from payments_site.celery import app

    app.conf.broker_url = url or "memory://"
    app.conf.task_always_eager = url is None
    app.conf.task_default_queue = queue
    # Producers are pooled per broker URL, process-wide: drop them all so the next publish
    # connects afresh.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@dataclass
class Broker:
    url: str
    queue: str


@pytest.fixture
def broker():
    """The shared Redis, with a queue of this test's own: parallel test processes share the
    Redis database, and a worker must never take another test's task."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    use_broker(REDIS_TEST_URL, queue)
    yield Broker(REDIS_TEST_URL, queue)
    use_broker(None)
    client = redis.Redis.from_url(REDIS_TEST_URL)
    # The queue has one list per priority step (queue, queue\x06\x166, …).
    client.delete(*client.keys(f"{queue}*"), f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    client.close()


def published(client: redis.Redis, queue: str) -> list[dict]:
    """The Celery messages waiting in a queue, in the order a worker takes them: task name,
    arguments and priority (kombu keeps one list per priority step; 0 is served first)."""
    messages = []
    for step in (0, 3, 6, 9):
        key = queue if step == 0 else f"{queue}\x06\x16{step}"
        for raw in reversed(client.lrange(key, 0, -1)):  # LPUSHed: the oldest is last
            envelope = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            messages.append({"task": envelope["headers"]["task"], "args": args,
                             "priority": envelope["properties"].get("priority")})
    return messages


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] or "postgres"
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


def start_worker(*, env: dict, log: Path, queue: str = "celery", timeout: float = 60.0) -> Worker:
    handle = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "payments_site", "worker", "--loglevel", "INFO",
         "--concurrency", "1", "--pool", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-Q", queue, "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
        cwd=BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )
    handle.close()
    worker = Worker(proc, log)

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        return " ready." in log.read_text()

    wait_until(ready, timeout=timeout, message="the celery worker to be ready")
    return worker


@pytest.fixture
def worker_env(settings, tmp_path, smtp_server):
    """The environment of a worker that shares this test's database, media folder and SMTP server."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings.MEDIA_ROOT = str(data_dir / "media")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
    env.update({
        "ALLOW_DEBUG": "1", "DATABASE_URL": database_url(), "CONN_MAX_AGE": "0", "DATA_DIR": str(data_dir),
        "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_server.port), "EMAIL_TIMEOUT": "5",
        "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL, "LOG_LEVEL": "INFO",
        "FULFILMENT_EMAIL_LEASE_SECONDS": "3",
    })
    return env


@pytest.fixture
def workers(broker, worker_env, tmp_path):
    """Start real `celery -A payments_site worker` processes; all are stopped by PID afterwards."""
    started: list[Worker] = []

    def start(**extra) -> Worker:
        worker = start_worker(env={**worker_env, "REDIS_URL": broker.url, "CELERY_TASK_DEFAULT_QUEUE": broker.queue,
                                   **extra}, queue=broker.queue,
                              log=tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)  # warm shutdown, like a deploy
            try:
                worker.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, on a free port, that the test may stop and restart."""

    class OwnRedis:
        def __init__(self):
            self.port = free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            self.proc = None

        def start(self):
            self.proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            client = redis.Redis.from_url(self.url)
            wait_until(lambda: _ping(client), timeout=10, message="redis-server to answer")
            client.close()

        def stop(self):
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(timeout=10)

    server = OwnRedis()
    server.start()
    yield server
    server.stop()
    use_broker(None)


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
