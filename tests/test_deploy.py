"""Production settings pass Django's deploy checks and send the security headers."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from invoices_app.tests.conftest import paid_session  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What an operator sets: no ALLOW_DEBUG, real-looking secrets, the public host name."""
    # Only what a server has: nothing of the test run's own environment (ALLOW_DEBUG and the like).
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "payments_site.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(32),
        "ALLOWED_HOSTS": "pay.example.com",
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "DATA_DIR": str(tmp_path / "data"),
        **extra,
    })
    return env


@pytest.mark.integration
@pytest.mark.parametrize("services", [
    {},
    {"DATABASE_URL": "postgres://app:pw@db.internal:5432/payments", "REDIS_URL": "redis://cache.internal:6379/0",
     "EMAIL_HOST": "smtp.internal", "TRUSTED_PROXY_COUNT": "1"},
], ids=["embedded", "postgres-redis-smtp"])
def test_check_deploy_is_clean_under_production_settings(tmp_path, services):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(tmp_path, **services), capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


PROBE = r"""
import json, logging, django
django.setup()
from django.conf import settings
from django.test import Client
c = Client()
plain = c.get("/session/not-a-session/status", HTTP_HOST="pay.example.com")
tls = c.get("/session/not-a-session/status", HTTP_HOST="pay.example.com", HTTP_X_FORWARDED_PROTO="https",
            HTTP_X_REQUEST_ID="probe-1")
evil = c.get("/session/not-a-session/status", HTTP_HOST="evil.example.net", HTTP_X_FORWARDED_PROTO="https")
logging.getLogger("probe").warning("probe line", extra={"session_id": "abc"})
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "tls": [tls.status_code, tls.get("Strict-Transport-Security"), tls.get("X-Content-Type-Options"),
            tls.get("X-Request-ID"), tls.get("Referrer-Policy")],
    "evil": evil.status_code,
    "cookies": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SESSION_COOKIE_HTTPONLY],
    "debug": settings.DEBUG,
}))
"""


@pytest.mark.integration
def test_production_redirects_to_https_sends_hsts_and_logs_json(tmp_path):
    # given the service started with production settings behind a TLS proxy
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=production_env(tmp_path),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # then plain http is redirected to https
    assert seen["plain"] == [301, "https://pay.example.com/session/not-a-session/status"]
    # and https answers carry HSTS (a year, subdomains, preload) and the request id
    status, hsts, nosniff, request_id, referrer = seen["tls"]
    assert status == 404
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    assert nosniff == "nosniff" and referrer == "same-origin"
    assert request_id == "probe-1"
    # an unknown Host is refused; cookies are Secure and HttpOnly; DEBUG is off
    assert seen["evil"] == 400
    assert seen["cookies"] == [True, True, True]
    assert seen["debug"] is False
    # and every log line on stderr is one JSON object carrying a request id
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no log lines"
    records = [json.loads(line) for line in lines]
    assert all({"ts", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    assert {"probe-1"} <= {r["request_id"] for r in records}
    probe = next(r for r in records if r["message"] == "probe line")
    assert probe["session_id"] == "abc" and probe["level"] == "WARNING"


@pytest.mark.integration
def test_production_refuses_to_start_with_placeholder_secrets(tmp_path):
    env = production_env(tmp_path, DJANGO_SECRET_KEY="changeme")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


# ---------------------------------------------------------------- Content-Security-Policy


def _open_session(api) -> str:
    return api.post("/create_session", {"amount": "12.50"}, format="json").json()["session_id"]


def test_the_checkout_page_sends_a_strict_content_security_policy(api, client):
    session_id = _open_session(api)
    page = client.get(f"/checkout?session={session_id}")
    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def _assert_strict_page(client, page) -> None:
    html = page.content.decode()
    assert page["Content-Security-Policy"]
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=|javascript:", html, re.I), html
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S | re.I):
        assert script.strip() == "", "inline script"
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert stylesheets and all(s.startswith("/static/") for s in stylesheets)
    assert client.get(stylesheets[0]).status_code == 200


@pytest.mark.parametrize("state", ["open", "paid", "failed", "missing"])
def test_checkout_pages_need_no_inline_script_or_style(api, client, state):
    # given a checkout page in each of its states
    session_id = _open_session(api)
    if state in ("paid", "failed"):
        outcome = "success" if state == "paid" else "failure"
        client.post(f"/checkout/{session_id}/simulate", {"outcome": outcome, "email": "buyer@example.test"})
    url = f"/checkout?session={session_id if state != 'missing' else 'nope'}"
    # then it carries the policy and nothing the policy would block
    _assert_strict_page(client, client.get(url))


def test_access_pages_send_the_policy_and_need_no_inline_script_or_style(
        paid_session, client, settings, tmp_path):  # noqa: F811 - the imported fixture
    from invoices_app.models import AccessLink
    from invoices_app.services.access import access_token
    from invoices_app.services.fulfilment import fulfilment_run

    settings.MEDIA_ROOT = str(tmp_path / "media")
    session = paid_session()
    fulfilment_run(session_id=session.pk)
    token = access_token(AccessLink.objects.get(session=session))
    page = client.get(f"/access/{token}")
    assert page.status_code == 200
    _assert_strict_page(client, page)
    revealed = client.post(f"/access/{token}/reveal-key")
    assert revealed.status_code == 200 and revealed.context["revealed_key"]
    _assert_strict_page(client, revealed)
    broken = client.get(f"/access/{token}x")
    assert broken.status_code == 401
    _assert_strict_page(client, broken)


def test_api_answers_carry_no_page_policy_but_the_admin_is_not_framed(api):
    response = api.get("/account")
    assert "Content-Security-Policy" not in response
    assert response["X-Frame-Options"] == "DENY"


def test_a_deployment_can_let_pages_fetch_from_an_extra_origin(api, client, settings):
    settings.CSP_CONNECT_SRC = ["http://127.0.0.1:8545"]
    page = client.get(f"/checkout?session={_open_session(api)}")
    directives = dict(d.strip().split(" ", 1) for d in page["Content-Security-Policy"].split(";"))
    assert directives["connect-src"] == "'self' http://127.0.0.1:8545"
    assert directives["script-src"] == "'self'"


def test_an_unknown_host_is_refused_in_the_error_shape(client):
    response = client.get("/session/x/status", HTTP_HOST="evil.example.net")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
