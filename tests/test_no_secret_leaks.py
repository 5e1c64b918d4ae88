"""No secret leaks: after a full payment and a volley of bad requests, no plain-text API key,
webhook secret, JWT secret or Django secret appears in the database, the logs, the audit trail
or any error response."""

from __future__ import annotations

import io
import json
import logging
import re
import secrets as secrets_module
import time
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.test import Client

from audit.models import AuditEvent
from core.logs import JsonFormatter, RequestIdFilter
from invoices_app.models import Fulfilment
from keys_app.services import key_revoke
from sessions_app.models import PaymentSession, Status
from sessions_app.providers import stripe_provider


@pytest.fixture
def every_log_line():
    """All records of every logger at DEBUG, formatted as production formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def database_dump() -> str:
    """Every row of every table, serialised."""
    chunks = []
    for model in apps.get_models(include_auto_created=True):
        chunks.append(serializers.serialize("json", model._base_manager.all()))
    return "\n".join(chunks)


def secrets_in_play(merchant, extra: dict[str, str]) -> dict[str, str]:
    found = {
        "merchant API key": merchant.plaintext_key,
        "Django SECRET_KEY": settings.SECRET_KEY,
        "JWT_SECRET_KEY": settings.JWT_SECRET_KEY,
        **{f"Stripe webhook secret {i}": s for i, s in enumerate(settings.STRIPE_TEST_WEBHOOK_SECRETS)},
        "One.com webhook secret": settings.ONECOM_TEST_WEBHOOK_SECRET,
        **extra,
    }
    # The secret part alone, too: a leak may drop a recognisable prefix (sk_test_, whsec_).
    for name, value in list(found.items()):
        if "_" in value and len(value.rsplit("_", 1)[-1]) >= 16:
            found[f"{name} (body)"] = value.rsplit("_", 1)[-1]
    assert all(len(v) >= 8 for v in found.values())
    return found


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


@pytest.mark.integration
def test_no_secret_appears_in_the_database_logs_audit_or_error_responses(
    merchant, other_merchant, api, django_capture_on_commit_callbacks, every_log_line, settings, mailoutbox, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # The buyer's inbox is a test recipient of the merchant, so the test-mode receipt is mailed.
    merchant.test_email_recipients = ["buyer@example.test"]
    merchant.save(update_fields=["test_email_recipients"])
    error_bodies: list[str] = []
    client = Client()

    def record(response, always: bool = False):
        if always or response.status_code >= 400:
            error_bodies.append(f"{response.status_code} {response.content.decode(errors='replace')}")
        return response

    # given a session paid through the checkout page and the signed webhook path
    created = record(api.post("/create_session", {"amount": "42.00", "description": "Pro"}, format="json",
                              HTTP_IDEMPOTENCY_KEY="order-1"))
    session_id = created.json()["session_id"]
    with django_capture_on_commit_callbacks(execute=True):
        paid = record(client.post(f"/checkout/{session_id}/simulate",
                                  {"outcome": "success", "email": "buyer@example.test"}))
    assert paid.status_code == 302
    assert PaymentSession.objects.get(pk=session_id).status == Status.PAID

    # and fulfilled: invoice, PDF, the buyer's key, the access link, two emails
    assert Fulfilment.objects.get(pk=session_id).completed_at is not None
    receipt = next(m for m in mailoutbox if "buyer@example.test" in m.to)
    token = re.search(r"/access/(\S+)", receipt.body).group(1)
    assert client.get(f"/access/{token}").status_code == 200
    buyer_key = client.post(f"/access/{token}/reveal-key").context["revealed_key"]
    assert buyer_key.startswith("ek_test_")

    # and a volley of bad requests, each answered with an error
    body = json.dumps(stripe_provider.test_event(session_id=session_id, event_type="payment_intent.succeeded",
                                                 amount=Decimal("42.00"), currency="EUR"))
    wrong_secret = "whsec_" + secrets_module.token_hex(24)
    attempts = [
        lambda: api.post("/create_session", {"amount": "-1"}, format="json"),
        lambda: api.post("/create_session", {"amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="order-1"),
        lambda: api.post("/create_session", "{not json", content_type="application/json"),
        lambda: api.get("/sessions/not-a-session"),
        lambda: api.get("/sessions?cursor=bogus"),
        lambda: api.patch("/account", {"vat_rate": "500"}, format="json"),
        lambda: Client().get("/account", HTTP_X_API_KEY=merchant.plaintext_key[:-2] + "xx"),
        lambda: Client().get("/account", HTTP_X_API_KEY="sk_test_" + "A" * 40),
        lambda: client.post("/webhooks/stripe", body, content_type="application/json",
                            HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body, secret=wrong_secret)),
        lambda: client.post("/webhooks/stripe", body, content_type="application/json",
                            HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body, timestamp=int(time.time()) - 3600)),
        lambda: client.post("/webhooks/stripe", body, content_type="application/json",
                            HTTP_STRIPE_SIGNATURE="t=1,v1=" + "ab" * 32),
        lambda: client.post("/webhooks/stripe", "{", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1"),
        lambda: client.post("/webhooks/stripe", body, content_type="text/plain"),
        lambda: client.post(f"/checkout/{session_id}/simulate", {"outcome": "nope"}),
        lambda: client.get("/checkout?session=missing"),
        lambda: client.get("/no-such-page"),
        lambda: client.post("/admin/login/", {"username": "admin", "password": settings.SECRET_KEY}),
        lambda: client.post(f"/access/{token}/reveal-key"),
        lambda: client.get(f"/access/{token[:-3]}xyz"),
        lambda: client.get(f"/access/{token}/invoice.pdf".replace(".", "", 1)),
    ]
    for attempt in attempts:
        record(attempt(), always=True)  # the admin answers a failed login with 200 and the form
    # including a key used after it was revoked
    key_revoke(key=other_merchant.api_key, actor="test")
    assert record(Client().get("/account", HTTP_X_API_KEY=other_merchant.plaintext_key)).status_code == 401
    assert len(error_bodies) == len(attempts) + 1

    secrets = secrets_in_play(merchant, {"revoked API key": other_merchant.plaintext_key,
                                         "wrong webhook secret": wrong_secret, "buyer's API key": buyer_key})

    # then no secret is in the database, the audit trail, the logs or any error answer
    assert _leaks(database_dump(), secrets) == []
    audit = serializers.serialize("json", AuditEvent.objects.all())
    assert AuditEvent.objects.filter(action="session.paid", subject_id=session_id).exists()
    assert _leaks(audit, secrets) == []
    logs = every_log_line.getvalue()
    assert logs, "nothing was logged"
    assert _leaks(logs, secrets) == []
    assert _leaks("\n".join(error_bodies), secrets) == []
    # nor in the emails: the buyer's key is shown once, on the access page, never mailed
    mails = "\n".join(
        text for m in mailoutbox
        for text in (m.subject, m.body, *(str(alt[0]) for alt in m.alternatives), *map(str, m.extra_headers.values()))
    )
    assert len(mailoutbox) == 2 and _leaks(mails, secrets) == []


def test_the_leak_search_finds_a_planted_secret(merchant):
    # A search that cannot fail proves nothing: plant the key and find it.
    merchant.address = f"notes: {merchant.plaintext_key}"
    merchant.save()
    assert _leaks(database_dump(), secrets_in_play(merchant, {})) != []
