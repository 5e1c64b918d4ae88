"""Many customers behind one address, Redis down, the admin lockout, and what reaches the logs."""

from __future__ import annotations

import http.server
import io
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.contrib.auth import get_user_model

from core.logs import RedactTokensFilter
from invoices_app.models import AccessLink
from invoices_app.pdf import STATIC_DIR, BundledStaticFetcher, invoice_html
from invoices_app.services.access import access_token
from invoices_app.services.fulfilment import fulfilment_run
from invoices_app.tests.conftest import free_port, paid_session  # noqa: F401 - fixture
from sessions_app.services import session_create

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.django_db


def _sessions(merchant, count: int) -> list[str]:
    return [str(session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("10.00"),
                               currency="EUR").pk) for _ in range(count)]


@pytest.fixture
def redis_cache(settings):
    """The production cache: Redis, with counters of this test's own."""
    url = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")
    prefix = f"limits-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}}
    yield
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


# ---------------------------------------------------------------- status polling behind one NAT


def test_200_checkout_pages_behind_one_address_never_see_a_429(merchant, anon, redis_cache):
    # given 200 open checkout pages, every one behind the same NAT address, with the default limits
    session_ids = _sessions(merchant, 200)
    # when each polls its status three times (9 s of a page's polling)
    answers = [anon.get(f"/session/{sid}/status", REMOTE_ADDR="127.0.113.9").status_code
               for _ in range(3) for sid in session_ids]
    # then none is refused
    assert answers.count(200) == 600, {code: answers.count(code) for code in set(answers)}


def test_one_session_polled_too_fast_is_limited_whatever_the_address(merchant, anon, rates, redis_cache):
    [session_id] = _sessions(merchant, 1)
    rates(status_session="3/min")
    for n in range(3):
        assert anon.get(f"/session/{session_id}/status", REMOTE_ADDR=f"127.0.100.{n}").status_code == 200
    refused = anon.get(f"/session/{session_id}/status", REMOTE_ADDR="127.0.100.99")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    # while another session's page is not held back
    [other] = _sessions(merchant, 1)
    assert anon.get(f"/session/{other}/status", REMOTE_ADDR="127.0.100.99").status_code == 200


def test_an_unchanged_status_answers_304_without_a_body(merchant, anon):
    [session_id] = _sessions(merchant, 1)
    first = anon.get(f"/session/{session_id}/status")
    etag = first["ETag"]
    assert first.status_code == 200 and etag and "no-cache" in first["Cache-Control"]
    again = anon.get(f"/session/{session_id}/status", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    # a stale ETag gets the full answer
    stale = anon.get(f"/session/{session_id}/status", HTTP_IF_NONE_MATCH='"0000"')
    assert stale.status_code == 200 and stale.json()["status"] == "created"


# ---------------------------------------------------------------- Redis down


@pytest.fixture
def redis_refusing(settings):
    """A Redis URL on a port nothing listens on: every cache call is refused."""
    port = free_port()
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=1).ping()


def test_with_redis_refusing_connections_the_status_limit_still_holds(merchant, anon, rates, redis_refusing):
    [session_id] = _sessions(merchant, 1)
    rates(status_session="3/min")
    answers = [anon.get(f"/session/{session_id}/status").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_with_redis_refusing_connections_the_public_pay_action_is_still_limited(merchant, client, rates,
                                                                               redis_refusing):
    [session_id] = _sessions(merchant, 1)
    rates(checkout_session="2/min")
    answers = [client.post(f"/checkout/{session_id}/pay/stripe", {"email": "x"}).status_code for _ in range(3)]
    assert answers[:2] == [400, 400]
    assert answers[2] == 429


# ---------------------------------------------------------------- the admin lockout


def test_a_locked_out_name_does_not_lock_out_the_other_users_behind_the_same_address(client, settings):
    # given two staff users behind one office NAT, and a limit of 5 failures
    settings.AXES_FAILURE_LIMIT = 5
    users = get_user_model().objects
    users.create_superuser("root", "root@example.test", "correct horse battery")
    users.create_superuser("ann", "ann@example.test", "ann's own passphrase")
    # when someone there guesses root's password five times
    for attempt in range(5):
        client.post("/admin/login/", {"username": "root", "password": f"guess-{attempt}"}, REMOTE_ADDR="127.0.2.1")
    # then root is locked out from there
    locked = client.post("/admin/login/", {"username": "root", "password": "correct horse battery"},
                         REMOTE_ADDR="127.0.2.1")
    assert locked.status_code == 429
    # but ann, from the same address, logs in
    ann = client.post("/admin/login/", {"username": "ann", "password": "ann's own passphrase"},
                      REMOTE_ADDR="127.0.2.1")
    assert ann.status_code == 302


def test_the_procfile_sets_the_proxy_count_its_loopback_bind_needs():
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert "--bind 127.0.0.1:" in web
    assert "TRUSTED_PROXY_COUNT=${TRUSTED_PROXY_COUNT:-1}" in web
    assert "TRUSTED_PROXY_COUNT" in (ROOT / "docs" / "deployment.md").read_text()


# ---------------------------------------------------------------- tokens never logged


@pytest.fixture
def console_log():
    """The configured console handler (settings.LOGGING), writing into a buffer."""
    handler = next(h for h in logging.getLogger().handlers
                   if any(isinstance(f, RedactTokensFilter) for f in h.filters))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.fixture
def fulfilled_token(paid_session, settings, tmp_path):  # noqa: F811
    settings.MEDIA_ROOT = str(tmp_path / "media")
    session = paid_session()
    fulfilment_run(session_id=session.pk)
    return access_token(AccessLink.objects.get(session=session))


def test_the_pdf_being_prepared_page_logs_no_access_token(client, fulfilled_token, console_log, settings):
    # given an access link whose PDF is not stored yet
    shutil.rmtree(settings.MEDIA_ROOT)
    # when the customer asks for it (Django logs the 503 at ERROR, with the path)
    response = client.get(f"/access/{fulfilled_token}/invoice.pdf")
    assert response.status_code == 503
    # then the log line is there, without the token
    logged = console_log.getvalue()
    assert "/access/[redacted]" in logged
    assert fulfilled_token not in logged
    assert fulfilled_token[:24] not in logged


def test_a_bad_access_token_is_not_logged_either(client, console_log):
    token = "tok_" + uuid.uuid4().hex * 3
    client.get(f"/access/{token}/invoice.pdf")
    client.get(f"/admin/set-password/MQ/{token}/")
    assert token not in console_log.getvalue()


GUNICORN_APP = """
def app(environ, start_response):
    if environ["PATH_INFO"].startswith("/boom"):
        raise RuntimeError("boom")
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"later"]
"""


def test_gunicorn_logs_no_access_token(tmp_path):
    # given gunicorn run with the Procfile's logger class and an access log
    (tmp_path / "tinyapp.py").write_text(GUNICORN_APP)
    port = free_port()
    access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "tinyapp:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--chdir", str(tmp_path), "--logger-class", "core.gunicorn_logging.RedactingLogger",
         "--access-logfile", str(access_log), "--error-logfile", str(error_log)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token = "tok_" + uuid.uuid4().hex * 3
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2)  # noqa: S310 - loopback
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        # when a customer asks for a PDF from the access page, and a request fails
        for path in (f"/access/{token}/invoice.pdf", f"/boom/access/{token}"):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Referer": f"https://pay.example.com/access/{token}"})
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # then neither log holds the token, and the access log still shows the request
    logs = access_log.read_text() + error_log.read_text()
    assert "/access/[redacted]/invoice.pdf" in access_log.read_text()
    assert "Error handling request" in error_log.read_text()
    assert token not in logs


# ---------------------------------------------------------------- what weasyprint may fetch


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        _Counter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_invoice_rendering_fetches_nothing_but_our_static_files(tmp_path):
    # given a local server that notes every request, and a secret file outside static/
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    secret = tmp_path / "secret.css"
    port = server.server_port
    secret.write_text(f"body {{ background: url(http://127.0.0.1:{port}/from-css); }}")
    try:
        # when a document pointing at both is rendered as invoices are
        html = (f'<link rel="stylesheet" href="{secret.as_uri()}">'
                f'<img src="http://127.0.0.1:{port}/img.png"><img src="file:///etc/passwd">'
                f'<link rel="stylesheet" href="css/checkout.css"><p>Invoice</p>')
        pdf = invoice_html(html).write_pdf()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    # then it renders, and no request left the renderer
    assert pdf.startswith(b"%PDF")
    assert _Counter.hits == []
    fetcher = BundledStaticFetcher()
    for url in (secret.as_uri(), "file:///etc/passwd", f"http://127.0.0.1:{port}/x",
                (STATIC_DIR / ".." / "manage.py").as_uri()):
        with pytest.raises(ValueError):
            fetcher(url)
    # while a bundled file is served
    assert b"{" in fetcher((STATIC_DIR / "css" / "checkout.css").as_uri()).read()
