"""`make bench`: the hot paths against baselines measured in the same run, on this machine.

It starts the service as production does (gunicorn sync workers, PostgreSQL, Redis, one
Celery worker, all on 127.0.0.1), drives it with `wrk`, and compares every hot path with a
minimal view served by the same processes. Each figure is the median of several short runs;
runs of different endpoints are interleaved so that the machine's noise falls on the hot path
and its baseline alike. The table is printed and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LUA = BENCH / "lua" / "requests.lua"
BIN = Path(sys.executable).parent

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/payments_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"

# The hot paths and the baseline each is held against (target ratio at c=8).
BASELINES = ("hello", "insert", "read")
HOT_PATHS = ("create_session", "webhook", "status", "verify")
ENDPOINTS = (*BASELINES, *HOT_PATHS)
# The order of the runs within a round: each hot path right next to its baseline, so a change
# in the machine's load between two runs falls on both sides of a ratio as far as it can.
RUN_ORDER = ("hello", "read", "status", "verify", "create_session", "insert", "webhook")
BASE_OF = {"create_session": "insert", "webhook": "insert", "status": "read", "verify": "read"}
TARGETS = {
    "create_session": ("insert", 0.6),
    "webhook": ("insert", 0.5),
    "status": ("read", 0.7),
    "verify": ("read", 0.8),
}
CREATE_P99_MS = 50.0
VERIFY_P99_MS = 10.0
# Every web worker must refuse a revoked entitlement key within this long.
REVOKE_SEEN_S = 1.0
PAID_TO_EMAIL_P50_S, PAID_TO_EMAIL_P99_S = 1.0, 3.0
PDF_MEDIAN_MS = 150.0
WEB_RSS_MB, CELERY_RSS_MB = 150.0, 250.0
# "Must not lose throughput" with twice the workers; the machine is noisy (about ±20 % between
# runs), so a drop of less than 10 % of the median is read as no loss.
SCALING_MIN_RATIO = 0.9


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- processes


class Service:
    """A process we started in its own session; stopped by its PID (its process group)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers left behind by a crash share the group; make sure none outlives us.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._log.close()


class RssSampler(threading.Thread):
    """Peak resident memory per role, sampled from /proc (via psutil) while the bench runs."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.roles: dict[str, tuple[int, bool]] = {}  # role -> (pid, children only)
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def watch(self, role: str, pid: int, *, children: bool) -> None:
        with self._lock:
            self.roles[role] = (pid, children)

    def forget(self, role: str) -> None:
        with self._lock:
            self.roles.pop(role, None)

    def sample(self) -> None:
        import psutil

        with self._lock:
            roles = dict(self.roles)
        for role, (pid, children) in roles.items():
            try:
                parent = psutil.Process(pid)
                procs = parent.children(recursive=True) if children else [parent]
                for proc in procs:
                    rss = proc.memory_info().rss
                    if rss > self.peak.get(role, 0):
                        self.peak[role] = rss
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------- setup


def prepare_database(database_url: str) -> None:
    import psycopg

    url = urlparse(database_url)
    name = url.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"Unsafe database name {name!r}")
    admin = url._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def ensure_database(url: str) -> None:
    """Create the database if it is missing (the standalone benches keep theirs between runs)."""
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    admin = f"host={cfg['HOST'] or '127.0.0.1'} port={cfg['PORT'] or 5432} user={cfg['USER'] or 'postgres'} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def service_env(*, database_url: str, redis_url: str, data_dir: Path, web_port: int, smtp_port: int) -> dict[str, str]:
    """Production settings (no ALLOW_DEBUG, real secrets), plus the baseline URLconf."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "ALLOW_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: TLS would end at the load balancer in front of these nodes.
        "SECURE_SSL_REDIRECT": "0",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(data_dir),
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # The merchant webhook receiver of the bench listens on loopback.
        "MERCHANT_WEBHOOK_ALLOW_LOOPBACK": "1",
        # The worker leaves the queue alone while the HTTP figures run (celery_consume), so the
        # deliveries handed on meanwhile wait there. Handing them on again after the production
        # minute is for a worker that died with them; here it would measure only the pause.
        "MERCHANT_WEBHOOK_REQUEUE_SECONDS": "3600",
        # The abuse limits stay on (their Redis round trips are part of each request's cost),
        # with ceilings a loopback load never reaches.
        **{f"THROTTLE_{scope}": "10000000/min" for scope in (
            "CREATE_SESSION_KEY", "CREATE_SESSION_IP", "API_KEY", "API_IP", "STATUS_SESSION", "STATUS_IP", "CHECKOUT_IP",
            "CHECKOUT_SESSION", "VERIFY_KEY")},
    })
    return env


def gunicorn_argv(*, port: int, workers: int) -> list[str]:
    """The Procfile's `web:` command, bound to our port and with the worker count given."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    argv = shlex.split(line.split(":", 1)[1])
    # The Procfile sets variables before the command (TRUSTED_PROXY_COUNT=…): the load comes
    # straight from loopback here, with no proxy in between.
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        argv.pop(0)
    for flag, value in (("--bind", f"127.0.0.1:{port}"), ("--workers", str(workers))):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    argv[0] = str(BIN / argv[0])
    return [*argv, "--log-level", "warning"]


def wait_http(url: str, *, deadline_s: float, service: Service) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} did not answer {url} in {deadline_s} s:\n{service.tail()}")


class MailSink:
    """A real SMTP server on loopback that notes when each message arrived."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.received: list[tuple[float, list[str], bytes]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                sink.received.append((time.time(), list(envelope.rcpt_tos), envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# ---------------------------------------------------------------- load


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class Figure:
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float | None:
        values = [getattr(s, attr) for s in self.samples]
        return statistics.median(values) if values else None

    def as_dict(self) -> dict[str, Any]:
        return {"rps": self.median("rps"), "p50_ms": self.median("p50_ms"), "p99_ms": self.median("p99_ms"),
                "errors": sum(s.errors for s in self.samples), "runs": [s.__dict__ for s in self.samples]}


def write_requests(path: Path, rows: list[tuple[str, str, dict[str, str], str]]) -> None:
    with open(path, "w") as out:
        for method, target, headers, body in rows:
            for part in (target, body, *headers.values()):
                if "\t" in part or "\n" in part or "\x1f" in part:
                    raise ValueError("request parts may not contain tabs or newlines")
            out.write(f"{method}\t{target}\t{chr(31).join(f'{k}: {v}' for k, v in headers.items())}\t{body}\n")


def run_wrk(*, port: int, requests_file: Path, concurrency: int, duration: float, cycle: bool) -> Sample:
    threads = min(concurrency, 2)
    argv = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(duration))}s", "--timeout", "10s",
            "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(requests_file), str(threads),
            "1" if cycle else "0"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    data = json.loads(line[len("WRKJSON "):])
    if data["wrapped"]:
        raise RuntimeError("wrk ran out of prepared one-time requests; raise the pool size")
    errors = sum(data[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return Sample(rps=round(data["requests"] / (data["duration_us"] / 1e6), 1), p50_ms=data["p50_us"] / 1000,
                  p99_ms=data["p99_us"] / 1000, requests=data["requests"], errors=errors)


# ---------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="payments-bench-"))
        self.services: list[Service] = []
        self.sampler = RssSampler()
        self.webs: dict[int, tuple[Service, int]] = {}  # workers -> (gunicorn, port)
        self.celery: Service | None = None
        self.results: dict[str, Any] = {}
        self.used_sessions: set[str] = set()
        self.pool_hint = 0.0

    # -- lifecycle

    def start_web(self, workers: int, port: int) -> None:
        web = Service(f"gunicorn-{workers}w", gunicorn_argv(port=port, workers=workers), self.env, self.workdir)
        self.services.append(web)
        wait_http(f"http://127.0.0.1:{port}/_bench/hello", deadline_s=60, service=web)
        self.sampler.watch(f"web_{workers}w", web.pid, children=True)
        self.webs[workers] = (web, port)

    def stop_webs(self) -> None:
        for web, _port in self.webs.values():
            web.stop()
            self.services.remove(web)
        self.webs.clear()

    def start_celery(self) -> None:
        self.celery_name = f"bench-{secrets.token_hex(3)}@127.0.0.1"
        argv = [str(BIN / "celery"), "-A", "payments_site", "worker", "--pool", "prefork", "--concurrency", "1",
                "--loglevel", "WARNING", "-n", self.celery_name]
        self.celery = Service("celery", argv, self.env, self.workdir)
        self.services.append(self.celery)
        from payments_site.celery import app

        end = time.monotonic() + 60
        while time.monotonic() < end:
            if not self.celery.alive():
                raise RuntimeError(f"celery exited:\n{self.celery.tail()}")
            if app.control.ping(destination=[self.celery_name], timeout=0.5):
                break
        else:
            raise RuntimeError(f"celery did not answer a ping:\n{self.celery.tail()}")
        self.sampler.watch("celery_main", self.celery.pid, children=False)
        self.sampler.watch("celery_pool", self.celery.pid, children=True)

    def celery_consume(self, on: bool) -> None:
        """The HTTP figures measure the web tier: the worker leaves the queue alone meanwhile."""
        from payments_site.celery import app

        queue = app.conf.task_default_queue or "celery"
        if on:
            app.control.add_consumer(queue, destination=[self.celery_name], reply=True, timeout=5)
        else:
            app.control.cancel_consumer(queue, destination=[self.celery_name], reply=True, timeout=5)

    def celery_purge(self) -> int:
        from payments_site.celery import app

        return app.control.purge() or 0

    def stop_all(self) -> None:
        self.sampler.stop()
        if getattr(self, "hooks_receiver", None):
            with contextlib.suppress(Exception):
                self.hooks_receiver.stop()
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                service.stop()
        self.services.clear()
        if getattr(self, "mail", None):
            with contextlib.suppress(Exception):
                self.mail.stop()

    # -- data

    def setup(self) -> None:
        args = self.args
        self.port = free_port()
        self.mail = MailSink()
        self.env = service_env(database_url=args.database_url, redis_url=args.redis_url,
                               data_dir=self.workdir / "data", web_port=self.port, smtp_port=self.mail.port)
        log(f"database {urlparse(args.database_url).path.lstrip('/')} (recreated), redis {args.redis_url}, "
            f"work dir {self.workdir}")
        prepare_database(args.database_url)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env,
                       check=True)
        os.environ.update(self.env)
        import django

        django.setup()
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        from keys_app.services import merchant_create

        self.merchant, issued = merchant_create(name="Bench Merchant Ltd", email="billing@bench.test")
        self.api_key = issued.plaintext
        # One enabled merchant webhook endpoint per merchant, as in production (bench_deliveries);
        # --no-merchant-endpoint measures the same paths without it, to see what it costs.
        from bench import bench_deliveries

        self.webhook_endpoints = []
        if not args.no_merchant_endpoint:
            self.hooks_receiver = bench_deliveries.Receiver()
            self.webhook_endpoints = [bench_deliveries.endpoint_for(self.merchant.pk, self.hooks_receiver.url)]
        self.make_request_files()

    def make_request_files(self) -> None:
        from bench.baseline_app.models import BaselineRow
        from keys_app.models import ApiKey
        from sessions_app.services import session_create

        files = self.workdir / "requests"
        files.mkdir()
        self.files = {name: files / f"{name}.tsv" for name in ENDPOINTS if name != "webhook"}
        json_headers = {"Content-Type": "application/json"}
        write_requests(self.files["hello"], [("GET", "/_bench/hello", {}, "")])
        write_requests(self.files["insert"], [("POST", "/_bench/insert", json_headers,
                                               json.dumps({"name": "Pro plan", "amount": "49.99"}))])
        rows = BaselineRow.objects.bulk_create(
            [BaselineRow(name=f"row {i}", amount=Decimal("49.99")) for i in range(1000)])
        write_requests(self.files["read"], [("GET", f"/_bench/read/{r.pk}", {}, "") for r in rows])
        body = {"amount": "49.99", "currency": "EUR", "description": "Pro plan, monthly",
                "customer_email": "buyer@example.com", "metadata": {"order_id": "A-1042"}}
        write_requests(self.files["create_session"], [
            ("POST", "/create_session", {**json_headers, "X-API-Key": self.api_key}, json.dumps(body))])
        key = ApiKey.objects.get(account=self.merchant)
        status_ids = [session_create(account=self.merchant, api_key=key, amount=Decimal("49.99")).pk
                      for _ in range(500)]
        self.used_sessions.update(str(s) for s in status_ids)
        write_requests(self.files["status"], [("GET", f"/session/{sid}/status", {}, "") for sid in status_ids])
        # What a merchant's service sends for each request it serves: a valid key, verified.
        from keys_app.entitlements import entitlement_key_issue

        self.entitlement = entitlement_key_issue(account=self.merchant, session_id=status_ids[0],
                                                 customer_email="buyer@example.com", expires_in_days=365,
                                                 metadata={"plan": "pro"}, actor="bench")
        write_requests(self.files["verify"], [
            ("POST", "/keys/verify", {**json_headers, "X-API-Key": self.api_key},
             json.dumps({"key": self.entitlement.plaintext}))])

    def webhook_file(self, count: int) -> Path:
        """`count` signed payment_intent.succeeded events, each for a session never paid before."""
        from django.utils import timezone

        from sessions_app.models import PaymentSession, Status
        from sessions_app.providers import stripe_provider

        ids = [str(pk) for pk in PaymentSession.objects.filter(account=self.merchant, status=Status.CREATED)
               .order_by("created_at").values_list("pk", flat=True)[: count + len(self.used_sessions)]
               if str(pk) not in self.used_sessions][:count]
        if len(ids) < count:
            # Fewer sessions than the run may need: add rows like the ones create_session writes
            # (in bulk; the webhook path reads only the session row).
            now = timezone.now()
            extra = PaymentSession.objects.bulk_create([
                PaymentSession(account=self.merchant, amount=Decimal("49.99"), currency="EUR", mode="test",
                               description="Pro plan, monthly", customer_email="buyer@example.com",
                               metadata={"order_id": "A-1042"}, providers=["stripe"], created_at=now,
                               expires_at=now + timedelta(hours=24))
                for _ in range(count - len(ids))], batch_size=1000)
            ids += [str(s.pk) for s in extra]
        self.used_sessions.update(ids)
        secret = self.env["STRIPE_WEBHOOK_SECRET"]
        rows = []
        for sid in ids:
            event = stripe_provider.test_event(session_id=sid, event_type="payment_intent.succeeded",
                                               amount=Decimal("49.99"), currency="EUR")
            body = json.dumps(event, separators=(",", ":"))
            headers = {"Content-Type": "application/json",
                       "Stripe-Signature": stripe_provider.sign(body, secret=secret)}
            rows.append(("POST", "/webhooks/stripe", headers, body))
        path = self.workdir / "requests" / "webhook.tsv"
        write_requests(path, rows)
        return path

    # -- measuring

    def measure(self, endpoint: str, concurrency: int, duration: float, port: int | None = None) -> Sample:
        from sessions_app.models import WebhookEvent

        port = port or self.port
        if endpoint != "webhook":
            sample = run_wrk(port=port, requests_file=self.files[endpoint], concurrency=concurrency,
                             duration=duration, cycle=True)
            if endpoint == "create_session":
                self.pool_hint = max(self.pool_hint, sample.rps)
            return sample
        # Size the pool of fresh events from the fastest rate seen so far, with a wide margin.
        count = int(max(1500, self.pool_hint * duration * 1.6))
        path = self.webhook_file(count)
        before = WebhookEvent.objects.filter(outcome=WebhookEvent.Outcome.PROCESSED).count()
        sample = run_wrk(port=port, requests_file=path, concurrency=concurrency, duration=duration, cycle=False)
        processed = WebhookEvent.objects.filter(outcome=WebhookEvent.Outcome.PROCESSED).count() - before
        # Every answered delivery must have paid its session (stored, transitioned, queued).
        if processed < sample.requests - sample.errors:
            raise RuntimeError(f"only {processed} of {sample.requests} webhooks paid a session")
        self.pool_hint = max(self.pool_hint, sample.rps)
        return sample

    def pass_(self, *, label: str, concurrencies: list[int], runs: int, duration: float,
              endpoints: tuple[str, ...]) -> dict[str, dict[int, Figure]]:
        figures = {ep: {c: Figure() for c in concurrencies} for ep in endpoints}
        for ep in endpoints:  # warm every path: imports, connections, caches
            self.measure(ep, 8, 1)
        for rep in range(runs):
            for c in concurrencies:
                for ep in endpoints:
                    sample = self.measure(ep, c, duration)
                    if ep == "verify" and sample.requests and self.verify_answer() != "valid":
                        raise RuntimeError("the verify bench key does not verify as valid")
                    figures[ep][c].samples.append(sample)
                    log(f"{label} run {rep + 1}/{runs} c={c:<2} {ep:<15} {sample.rps:8.1f} req/s "
                        f"p50 {sample.p50_ms:6.2f} ms p99 {sample.p99_ms:7.2f} ms"
                        + (f"  ERRORS {sample.errors}" if sample.errors else ""))
        return figures

    def verify_answer(self, port: int | None = None) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port or self.port}/keys/verify", method="POST",
            data=json.dumps({"key": self.entitlement.plaintext}).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": self.api_key})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback server
            return json.loads(response.read())["code"]

    def measure_revoke(self) -> dict[str, Any]:
        """Revoke the verified (and cached) key, then ask every worker over fresh connections for
        1.5 s: the last answer of `valid` must come within REVOKE_SEEN_S of the revoke."""
        from keys_app.entitlements import entitlement_key_revoke

        for _ in range(20):  # every worker has the key cached
            assert self.verify_answer() == "valid"
        entitlement_key_revoke(key=self.entitlement.key, actor="bench")
        revoked_at = time.monotonic()
        last_valid, answers = None, 0
        while time.monotonic() - revoked_at < 1.5:
            answer = self.verify_answer()
            answers += 1
            if answer == "valid":
                last_valid = time.monotonic() - revoked_at
        return {"answers_after_revoke": answers, "last_valid_after_s": last_valid}

    def scale_pass(self, *, concurrencies: list[int], runs: int, duration: float,
                   endpoints: tuple[str, ...]) -> dict[int, dict[str, dict[int, Figure]]]:
        """Both worker counts served at once on two ports, measured alternately, run by run."""
        counts = sorted(self.webs)
        figures = {w: {ep: {c: Figure() for c in concurrencies} for ep in endpoints} for w in counts}
        for ep in endpoints:
            self.measure(ep, 8, 1, port=self.webs[counts[-1]][1])
        for rep in range(runs):
            for c in concurrencies:
                for ep in endpoints:
                    for w in counts:
                        sample = self.measure(ep, c, duration, port=self.webs[w][1])
                        figures[w][ep][c].samples.append(sample)
                        log(f"{w}w run {rep + 1}/{runs} c={c:<2} {ep:<15} {sample.rps:8.1f} req/s "
                            f"p50 {sample.p50_ms:6.2f} ms p99 {sample.p99_ms:7.2f} ms"
                            + (f"  ERRORS {sample.errors}" if sample.errors else ""))
        return figures

    # -- fulfilment (paid -> invoice PDF -> email)

    def fulfilment_available(self) -> bool:
        try:
            from bench import fulfilment  # noqa: F401
        except ImportError:
            return False
        return fulfilment.available()

    def fulfilment_plan(self) -> str:
        from bench import fulfilment

        return f"{fulfilment.PAYMENTS} payments, one every {fulfilment.PACE_S} s, one worker"

    def drop_backlog(self) -> None:
        dropped = self.celery_purge()
        if dropped:
            log(f"dropped {dropped} fulfilment tasks queued by the webhook load (not part of any figure)")

    def measure_fulfilment(self) -> dict[str, Any]:
        from bench import fulfilment

        return fulfilment.measure(self)

    # -- main

    def run(self) -> dict[str, Any]:
        args = self.args
        started = datetime.now(UTC)
        self.setup()
        self.sampler.start()
        self.start_celery()
        self.celery_consume(False)
        endpoints = tuple(ep for ep in RUN_ORDER if not args.only or ep in args.only or ep in BASELINES)
        main = {}
        if http_wanted(args):
            self.start_web(args.workers, self.port)
            log(f"gunicorn sync x{args.workers} on 127.0.0.1:{self.port}; celery worker {self.celery_name}")
            main = self.pass_(label=f"{args.workers}w", concurrencies=args.concurrency, runs=args.runs,
                              duration=args.duration, endpoints=endpoints)
        fulfilment = None
        if self.fulfilment_available() and not args.skip_fulfilment and http_wanted(args):
            self.drop_backlog()
            self.celery_consume(True)
            log(f"paid -> email: {self.fulfilment_plan()}")
            fulfilment = self.measure_fulfilment()
            self.celery_consume(False)
        scaling = None
        if args.scale_workers and http_wanted(args):
            self.start_web(args.scale_workers, free_port())
            log(f"scaling: gunicorn sync x{args.workers} and x{args.scale_workers}, measured alternately")
            scaling = self.scale_pass(concurrencies=args.scale_concurrency, runs=args.runs,
                                      duration=args.duration, endpoints=endpoints)
        revoke = self.measure_revoke() if "verify" in endpoints and http_wanted(args) else None
        self.stop_webs()
        self.drop_backlog()
        deliveries = None
        if not args.skip_deliveries:
            from bench import bench_deliveries

            log(f"merchant webhooks: {bench_deliveries.DELIVERIES} deliveries against "
                f"{bench_deliveries.NOOP_TASKS} no-op tasks, one worker")
            deliveries = bench_deliveries.measure(self)
        self.sampler.sample()
        return self.report(started=started, main=main, scaling=scaling, fulfilment=fulfilment, revoke=revoke,
                           deliveries=deliveries)

    def report(self, *, started, main, scaling, fulfilment, revoke=None, deliveries=None) -> dict[str, Any]:
        args = self.args
        mb = {role: round(v / 2**20, 1) for role, v in self.sampler.peak.items()}
        web_rss = max([v for k, v in mb.items() if k.startswith("web_")], default=None)
        celery_rss = max([v for k, v in mb.items() if k.startswith("celery")], default=None)
        figures = {}
        for ep, per_c in main.items():
            figures[ep] = {}
            for c, fig in per_c.items():
                entry = fig.as_dict()
                base = BASE_OF.get(ep)
                if base in main:
                    entry["baseline"] = base
                    entry["ratio"] = paired_ratio(fig, main[base][c])
                figures[ep][str(c)] = entry
        result: dict[str, Any] = {
            "date": started.isoformat(timespec="seconds"),
            "machine": machine(),
            "config": {"merchant_endpoint": not args.no_merchant_endpoint, "workers": args.workers,
                       "scale_workers": args.scale_workers, "runs": args.runs,
                       "duration_s": args.duration, "concurrency": args.concurrency,
                       "server": "gunicorn sync", "celery": "1 worker, prefork, concurrency 1",
                       "ratio": "median over runs of (hot path req/s / its baseline's req/s in the same round)"},
            "figures": figures,
            "rss_mb": mb,
            "fulfilment": fulfilment,
            "revoke": revoke,
            "deliveries": deliveries,
        }
        targets = []
        for ep, (base, target) in TARGETS.items():
            ratio = figures.get(ep, {}).get("8", {}).get("ratio")
            if ratio is not None:
                targets.append({"target": f"{ep} req/s >= {target}x {base} (c=8)", "value": ratio,
                                "ok": ratio >= target})
        create = main.get("create_session", {}).get(8)
        if create:
            p99 = round(create.median("p99_ms"), 1)
            targets.append({"target": f"create_session p99 <= {CREATE_P99_MS:.0f} ms (c=8)", "value": p99,
                            "ok": p99 <= CREATE_P99_MS,
                            "note": f"insert baseline p99 {main['insert'][8].median('p99_ms'):.1f} ms in the same run"})
        verify = main.get("verify", {}).get(8)
        if verify:
            p99 = round(verify.median("p99_ms"), 2)
            targets.append({"target": f"verify p99 <= {VERIFY_P99_MS:.0f} ms (c=8)", "value": p99,
                            "ok": p99 <= VERIFY_P99_MS,
                            "note": f"read baseline p99 {main['read'][8].median('p99_ms'):.2f} ms in the same run"})
        if revoke:
            seen = revoke["last_valid_after_s"]
            targets.append({"target": f"a revoked key is refused by every worker within {REVOKE_SEEN_S:g} s",
                            "value": 0.0 if seen is None else round(seen, 3),
                            "ok": seen is None or seen <= REVOKE_SEEN_S,
                            "note": f"{revoke['answers_after_revoke']} verifications over fresh connections "
                                    f"in the 1.5 s after the revoke"})
        if fulfilment:
            for key, limit, unit in (("paid_to_email_p50_s", PAID_TO_EMAIL_P50_S, "s"),
                                     ("paid_to_email_p99_s", PAID_TO_EMAIL_P99_S, "s"),
                                     ("pdf_median_ms", PDF_MEDIAN_MS, "ms")):
                value = fulfilment.get(key)
                targets.append({"target": f"{key} <= {limit:g} {unit}", "value": value,
                                "ok": value is not None and value <= limit})
        else:
            for name in ("paid_to_email_p50_s", "paid_to_email_p99_s", "pdf_median_ms"):
                targets.append({"target": name, "value": None, "ok": None, "note": "not yet measurable"})
        if deliveries:
            # sys.path holds the repository only once main() runs.
            from bench.bench_deliveries import TARGET_RATIO

            targets.append({"target": f"merchant webhook deliveries/s >= {TARGET_RATIO:g}x no-op Celery tasks/s "
                                      "(1 worker)",
                            "value": deliveries["ratio"],
                            "ok": deliveries["complete"] and deliveries["ratio"] >= TARGET_RATIO,
                            "note": f"{deliveries['deliveries_per_s']} deliveries/s, "
                                    f"{deliveries['noop_tasks_per_s']} no-op tasks/s"})
        targets.append({"target": f"web worker RSS <= {WEB_RSS_MB:g} MB", "value": web_rss,
                        "ok": web_rss is not None and web_rss <= WEB_RSS_MB})
        targets.append({"target": f"celery worker RSS <= {CELERY_RSS_MB:g} MB", "value": celery_rss,
                        "ok": celery_rss is not None and celery_rss <= CELERY_RSS_MB})
        if scaling:
            one, two = scaling[args.workers], scaling[args.scale_workers]
            result["scaling"] = {}
            for ep in one:
                for c in args.scale_concurrency:
                    ratio = paired_ratio(two[ep][c], one[ep][c])
                    result["scaling"].setdefault(ep, {})[str(c)] = {
                        f"{args.workers}w": one[ep][c].as_dict(), f"{args.scale_workers}w": two[ep][c].as_dict(),
                        "ratio": ratio}
                    if ep in HOT_PATHS:
                        targets.append({"target": f"{ep} c={c}: x{args.scale_workers} vs x{args.workers} workers "
                                                  f"req/s >= {SCALING_MIN_RATIO}", "value": ratio,
                                        "ok": ratio is not None and ratio >= SCALING_MIN_RATIO})
        result["targets"] = targets
        return result


def http_wanted(args: argparse.Namespace) -> bool:
    """Whether the HTTP passes run: not for `--only deliveries` (the merchant webhook figure alone)."""
    return not args.only or set(args.only) != {"deliveries"}


def paired_ratio(fig: Figure, base: Figure) -> float | None:
    """Median of the run-by-run ratios: each run is compared with the baseline run next to it."""
    pairs = [a.rps / b.rps for a, b in zip(fig.samples, base.samples, strict=False) if b.rps]
    return round(statistics.median(pairs), 3) if pairs else None


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(Exception):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    pg = ""
    with contextlib.suppress(Exception):
        from django.db import connection

        pg = connection.cursor().connection.info.server_version
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "postgresql": pg, "kernel": platform.release()}


# ---------------------------------------------------------------- output


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    figs = result["figures"]
    lines = [f"\nPerformance, {result['date']}, {result['machine']['nproc']} cores ({result['machine']['cpu']}), "
             f"gunicorn sync x{args.workers}, medians of {args.runs} runs x {args.duration:g} s"
             + (", no merchant webhook endpoint" if args.no_merchant_endpoint else ""),
             f"{'path':<16}{'c':>3}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}   {'baseline':<10}{'req/s':>10}"
             f"{'p99 ms':>9}{'ratio':>8}",
             "-" * 86]
    for ep in ENDPOINTS:
        for c, fig in figs.get(ep, {}).items():
            base = fig.get("baseline")
            b = figs[base][c] if base else None
            ratio = fig.get("ratio")
            lines.append(f"{ep:<16}{c:>3}{fmt(fig['rps']):>10}{fmt(fig['p50_ms'], 2):>9}{fmt(fig['p99_ms'], 2):>9}   "
                         f"{(base or ''):<10}{fmt(b['rps'] if b else None):>10}"
                         f"{fmt(b['p99_ms'] if b else None, 2):>9}{(fmt(ratio, 2) + 'x') if ratio else '':>8}")
    lines.append("(ratio: median of run-by-run ratios to the baseline measured in the same round)")
    if result.get("scaling"):
        w1, w2 = f"{args.workers}w", f"{args.scale_workers}w"
        lines.append("")
        lines.append(f"Scaling: gunicorn sync x{args.scale_workers} against x{args.workers}, both served at once "
                     f"and measured alternately")
        for ep, per_c in result["scaling"].items():
            for c, row in per_c.items():
                lines.append(f"{ep:<16}{c:>3}  x{args.workers}{fmt(row[w1]['rps']):>10} req/s  "
                             f"x{args.scale_workers}{fmt(row[w2]['rps']):>10} req/s  p99 {fmt(row[w2]['p99_ms'], 1):>7} ms"
                             f"  ratio {fmt(row['ratio'], 2)}x")
    ful = result.get("fulfilment")
    lines.append("")
    if ful:
        lines.append(f"Paid to email sent (1 worker, n={ful['count']}, one payment every {ful['pace_s']} s): "
                     f"p50 {fmt(ful['paid_to_email_p50_s'], 3)} s, p99 {fmt(ful['paid_to_email_p99_s'], 3)} s")
        lines.append(f"Invoice PDF render: median {fmt(ful['pdf_median_ms'])} ms (n={ful['pdf_count']})")
    else:
        why = "skipped (--skip-fulfilment)" if args.skip_fulfilment else "not yet measurable (fulfilment not built)"
        lines.append(f"Paid to email sent / invoice PDF: {why}")
    hooks = result.get("deliveries")
    if hooks:
        lines.append(f"Merchant webhooks (1 worker, local receiver answering 200): {fmt(hooks['deliveries_per_s'])} "
                     f"deliveries/s; no-op Celery tasks {fmt(hooks['noop_tasks_per_s'])}/s; "
                     f"ratio {fmt(hooks['ratio'], 2)}x")
    revoke = result.get("revoke")
    if revoke:
        seen = revoke["last_valid_after_s"]
        lines.append(f"Revoked entitlement key: {revoke['answers_after_revoke']} verifications in the 1.5 s after the "
                     f"revoke; last 'valid' answer " + ("none" if seen is None else f"{seen * 1000:.0f} ms after it"))
    rss = result["rss_mb"]
    lines.append("Peak RSS per process (MB): " + ", ".join(f"{k} {v}" for k, v in sorted(rss.items())))
    lines.append("")
    lines.append("Targets")
    for t in result["targets"]:
        mark = {True: "ok  ", False: "MISS", None: "n/a "}[t["ok"]]
        value = t["value"] if t["value"] is not None else "-"
        lines.append(f"  [{mark}] {t['target']:<60} {value}" + (f"  ({t['note']})" if t.get("note") else ""))
    print("\n".join(lines), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x]

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2, one per core)")
    parser.add_argument("--scale-workers", type=int, default=None,
                        help="second pass with this many workers (default 2x --workers; 0 skips it)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--duration", type=float, default=5, help="seconds per run")
    parser.add_argument("--concurrency", type=ints, default=[1, 8, 32])
    parser.add_argument("--scale-concurrency", type=ints, default=[8])
    parser.add_argument("--only", type=lambda s: s.split(","), default=None,
                        help="hot paths to measure (baselines always run), e.g. webhook,status; "
                             "`deliveries` alone measures only the merchant webhook deliveries/s")
    parser.add_argument("--skip-fulfilment", action="store_true", help="skip paid->email and the PDF render")
    parser.add_argument("--skip-deliveries", action="store_true", help="skip the merchant webhook deliveries/s figure")
    parser.add_argument("--no-merchant-endpoint", action="store_true",
                        help="give the bench's merchant no webhook endpoint (what the endpoint costs the hot paths)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    if args.scale_workers is None:
        args.scale_workers = 2 * args.workers
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None and http_wanted(args):
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (make bench does it)")
    sys.path.insert(0, str(ROOT))
    bench = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        result = bench.run()
    finally:
        bench.stop_all()
    print_table(result, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str))
    log(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    shutil.rmtree(bench.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
