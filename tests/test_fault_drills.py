"""Fault drills. Each breaks something real in the middle of a payment and ends with nothing
lost and nothing doubled: one event stored, one transition, one audit row, one paid signal."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, connections

from audit.models import AuditEvent
from core import db
from invoices_app import handoff
from invoices_app.models import EmailRecord, Fulfilment, Invoice
from invoices_app.tests.conftest import (  # noqa: F401 - fixtures shared with the fulfilment tests
    SmtpSink,
    broker,
    create_session,
    free_port,
    own_redis,
    paid_event_body,
    post_webhook,
    smtp_server,
    use_broker,
    wait_until,
    worker_env,
    workers,
)
from keys_app.models import EntitlementKey
from sessions_app import lifecycle, one_statement
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.services import session_create
from sessions_app.signals import session_paid


def _post(url: str, body: str, signature: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "Stripe-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _terminate_own_backend() -> None:
    """Kill this thread's PostgreSQL connection from another connection, as a failover or an
    operator's pg_terminate_backend would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = connection.settings_dict
    with psycopg.connect(dbname=params["NAME"], user=params["USER"], host=params["HOST"] or "127.0.0.1",
                         port=params["PORT"] or 5432, password=params["PASSWORD"] or None, autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        # pg_terminate_backend only signals; wait until the backend is gone.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            time.sleep(0.01)
        raise AssertionError("backend still alive")


def _once(func: Callable, before: Callable[[], None]) -> Callable:
    state = {"fired": False}

    def wrapper(*args, **kwargs):
        if not state["fired"]:
            state["fired"] = True
            before()
        return func(*args, **kwargs)

    return wrapper


@pytest.fixture
def paid_signals():
    received: list = []

    def receiver(sender, session_id, **kwargs):
        received.append(session_id)

    session_paid.connect(receiver, dispatch_uid="fault-drill-counter")
    yield received
    session_paid.disconnect(dispatch_uid="fault-drill-counter")


@pytest.fixture
def open_session(transactional_db, merchant):
    from keys_app.models import ApiKey

    return session_create(account=merchant, api_key=ApiKey.objects.get(account=merchant),
                                   amount=Decimal("25.00"), currency="EUR")


def _assert_paid_exactly_once(session: PaymentSession, event_id: str, paid_signals: list) -> None:
    session.refresh_from_db()
    assert session.status == Status.PAID
    assert WebhookEvent.objects.filter(event_id=event_id).count() == 1
    assert AuditEvent.objects.filter(subject_id=str(session.pk), action="session.paid").count() == 1
    assert paid_signals == [session.pk]


@pytest.mark.integration
@pytest.mark.parametrize("moment", ["_store", "audit_append", "commit", "transition_write"],
                         ids=["before-the-event-row", "after-the-transition", "at-commit", "before-the-one-statement"])
def test_a_webhook_survives_its_database_connection_being_killed(live_server, open_session, paid_signals,
                                                                monkeypatch, moment):
    # given a signed payment event for an open session
    event = stripe_provider.test_event(session_id=str(open_session.pk), event_type="payment_intent.succeeded",
                                       amount=open_session.amount, currency="EUR")
    body = json.dumps(event)
    # and the database connection dies in the middle of applying it: on the locked path (session
    # row already locked, or just as the transaction commits), or on the one-statement path after
    # the session was read (that statement commits by itself: it either ran whole or not at all)
    if moment != "transition_write":
        monkeypatch.setattr(db, "ONE_STATEMENT", False)
    if moment == "commit":
        wrapper = type(connections["default"])
        monkeypatch.setattr(wrapper, "_commit", _once(wrapper._commit, _terminate_own_backend))
    else:
        where = one_statement if moment == "transition_write" else lifecycle
        monkeypatch.setattr(where, moment, _once(getattr(where, moment), _terminate_own_backend))

    # when Stripe delivers it
    status, answer = _post(f"{live_server.url}/webhooks/stripe", body, stripe_provider.sign(body))

    # then the delivery fails with a 5xx in the error shape, so Stripe will retry, and nothing was half-written
    assert status == 500 and answer["error"]["code"] == "server_error"
    open_session.refresh_from_db()
    assert open_session.status == Status.CREATED
    # (the event may be kept, whole, as failed: what staff and the retry reprocess)
    assert not WebhookEvent.objects.filter(event_id=event["id"]).exclude(outcome="failed").exists()
    assert paid_signals == []

    # when Stripe retries (a new attempt is signed afresh), on a new connection
    status, answer = _post(f"{live_server.url}/webhooks/stripe", body, stripe_provider.sign(body))
    assert (status, answer["outcome"]) == (200, "processed")
    # and a late duplicate arrives too
    status, answer = _post(f"{live_server.url}/webhooks/stripe", body, stripe_provider.sign(body))
    assert (status, answer["outcome"]) == (200, "duplicate")

    # then the session is paid exactly once
    _assert_paid_exactly_once(open_session, event["id"], paid_signals)


# ---------------------------------------------------------------- clock skew


@pytest.mark.parametrize(("skew", "accepted"), [(-305, False), (305, False), (-3600, False), (86400, False),
                                               (-295, True), (295, True), (0, True)])
def test_signatures_are_judged_against_our_clock_with_a_tolerance(api, client, skew, accepted):
    # given a payment event signed by a sender whose clock is `skew` seconds off ours (a few seconds
    # from the 300 s edge: the test itself takes time between signing and the check)
    session_id = api.post("/create_session", {"amount": "5.00"}, format="json").json()["session_id"]
    body = json.dumps(stripe_provider.test_event(session_id=session_id, event_type="payment_intent.succeeded",
                                                 amount=Decimal("5.00"), currency="EUR"))
    signature = stripe_provider.sign(body, timestamp=int(time.time()) + skew)
    # when it is delivered
    response = client.post("/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
    # then within the tolerance it pays the session; beyond it, it changes nothing
    session = PaymentSession.objects.get(pk=session_id)
    if accepted:
        assert response.status_code == 200 and session.status == Status.PAID
    else:
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "signature_timestamp_out_of_range"
        assert session.status == Status.CREATED and not WebhookEvent.objects.exists()


def test_a_stale_delivery_then_a_fresh_retry_pays_once(api, client, paid_signals):
    session_id = api.post("/create_session", {"amount": "5.00"}, format="json").json()["session_id"]
    body = json.dumps(stripe_provider.test_event(session_id=session_id, event_type="payment_intent.succeeded",
                                                 amount=Decimal("5.00"), currency="EUR"))
    stale = client.post("/webhooks/stripe", body, content_type="application/json",
                        HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body, timestamp=int(time.time()) - 900))
    assert stale.status_code == 400
    for _ in range(2):
        client.post("/webhooks/stripe", body, content_type="application/json",
                    HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    session = PaymentSession.objects.get(pk=session_id)
    assert session.status == Status.PAID
    assert WebhookEvent.objects.filter(session=session).count() == 1
    assert AuditEvent.objects.filter(subject_id=session_id, action="session.paid").count() == 1


# ---------------------------------------------------------------- Redis down


@pytest.mark.integration
def test_a_payment_goes_through_with_redis_down_and_fulfilment_catches_up(
        api, merchant, own_redis, settings, tmp_path, mailoutbox, django_capture_on_commit_callbacks):  # noqa: F811
    # given production wiring: Redis is both the cache (rate limits) and the Celery broker
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": own_redis.url, "OPTIONS": {"socket_connect_timeout": 1,
                                                                         "socket_timeout": 1}}}
    use_broker(own_redis.url)
    # The buyer's inbox is a test recipient of the merchant: test mode mails no one else.
    merchant.test_email_recipients = ["buyer@example.test"]
    merchant.save(update_fields=["test_email_recipients"])
    # and Redis goes down just before the customer pays
    own_redis.stop()

    # when the merchant creates a session, the customer polls it and pays on the checkout page
    created = api.post("/create_session", {"amount": "30.00", "customer_email": "buyer@example.test"},
                       format="json")
    assert created.status_code == 201, created.content
    session_id = created.json()["session_id"]
    assert api.get(f"/session/{session_id}/status").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        paid = api.post(f"/checkout/{session_id}/simulate", {"outcome": "success"}, format="multipart")
    assert paid.status_code == 302

    # then the payment is recorded once, and fulfilment waits for the broker
    session = PaymentSession.objects.get(pk=session_id)
    assert session.status == Status.PAID
    assert WebhookEvent.objects.filter(session=session).count() == 1
    assert not Invoice.objects.exists() and mailoutbox == []

    # when Redis is back and the safety net runs its round
    own_redis.start()
    use_broker(None)  # fulfilment in this process; real workers are drilled in invoices_app/tests
    assert handoff.fulfilment_safety_net(older_than_seconds=0) == 1
    assert handoff.fulfilment_safety_net(older_than_seconds=0) == 0

    # then everything happened exactly once
    assert Fulfilment.objects.get(pk=session.pk).completed_at is not None
    assert Invoice.objects.filter(session=session).count() == 1
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1
    assert sorted(m.to[0] for m in mailoutbox) == ["billing@acme.test", "buyer@example.test"]


# ---------------------------------------------------------------- SMTP down, then back


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_mail_is_sent_once_when_the_smtp_server_comes_back(merchant, workers, client):  # noqa: F811
    # given a worker whose SMTP server is down (nothing listens on its port)
    port = free_port()
    workers(EMAIL_PORT=str(port))
    # The buyer's inbox is a test recipient of the merchant: test mode mails no one else.
    merchant.test_email_recipients = ["buyer@example.com"]
    merchant.save(update_fields=["test_email_recipients"])
    session = create_session(merchant, email="buyer@example.com")

    # when the session is paid
    assert post_webhook(client, paid_event_body(session)).status_code == 200

    # then the receipt fails and is retried, while the invoice, key and link are kept
    wait_until(lambda: EmailRecord.objects.filter(session=session, kind="receipt").exclude(last_error="").exists(),
               timeout=60, message="a failed send attempt")
    assert Invoice.objects.filter(session=session).count() == 1
    assert Fulfilment.objects.get(pk=session.pk).completed_at is None

    # when the SMTP server comes back on that port
    sink = SmtpSink(port=port)
    from aiosmtpd.controller import Controller

    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        # then the worker's own retry delivers everything, once
        wait_until(lambda: Fulfilment.objects.filter(pk=session.pk, completed_at__isnull=False).exists(),
                   timeout=90, message="fulfilment after SMTP came back")
    finally:
        controller.stop()
    assert len(sink.to("buyer@example.com")) == 1
    assert len(sink.to("billing@acme.test")) == 1
    receipt = EmailRecord.objects.get(session=session, kind="receipt")
    assert receipt.sent_at is not None and receipt.attempts >= 2
    assert Invoice.objects.filter(session=session).count() == 1
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1
