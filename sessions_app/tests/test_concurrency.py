"""Races on PostgreSQL: real threads, each with its own database connection, released together.

These need row locks and unique indexes that behave as in production, so they run on
PostgreSQL only (CI always sets DATABASE_URL to PostgreSQL; there a missing PostgreSQL fails).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from audit.models import AuditEvent
from audit.services import audit_verify
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.tests.conftest import stripe_event
from tests import threads

# Every race on both write paths (the one-statement fast path and the locked ORM path).
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("write_path")]

BURST = 50
# One burst of connections at a time on this PostgreSQL server, whoever runs it.
LOCK_PATH = os.path.join(tempfile.gettempdir(), "payments-pg-burst.lock")


@pytest.fixture(autouse=True)
def _postgresql_only(transactional_db):
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the concurrency tests on PostgreSQL: set DATABASE_URL.")
        pytest.skip("row locks and concurrent unique inserts are tested on PostgreSQL only")


def _free_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity)"
        )
        return cursor.fetchone()[0]


@contextmanager
def _connection_budget(needed: int, timeout: float = 120.0) -> Iterator[None]:
    """Wait (bounded) until this burst may take `needed` connections without starving anyone."""
    deadline = time.monotonic() + timeout
    with open(LOCK_PATH, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("another connection burst held the lock too long")
                time.sleep(0.1)
        try:
            while _free_connections() < needed + 5:
                if time.monotonic() > deadline:
                    pytest.fail(f"PostgreSQL has fewer than {needed + 5} free connections")
                time.sleep(0.2)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def run_together(count: int, work: Callable[[int], Any], timeout: float = 60.0) -> list[Any]:
    """Run `work(i)` in `count` threads at one instant, once PostgreSQL has room for them all."""
    with _connection_budget(count):
        return threads.run_together(count, work, timeout)


def _post_signed(body: str) -> tuple[int, str]:
    response = Client().post("/webhooks/stripe", body, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    return response.status_code, response.json().get("outcome", response.json().get("error", {}).get("code"))


def test_fifty_concurrent_deliveries_of_one_event_pay_once(make_session):
    # given one signed success event for an open session
    session = make_session()
    body = json.dumps(stripe_event(session))

    # when 50 deliveries of it arrive at the same instant
    results = run_together(BURST, lambda _: _post_signed(body))

    # then every delivery is acknowledged, one processed it and the rest were duplicates
    assert Counter(results) == Counter({(200, "processed"): 1, (200, "duplicate"): BURST - 1})
    # and there is one transition, one stored event, one audit row for the payment
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID
    assert WebhookEvent.objects.count() == 1
    assert AuditEvent.objects.filter(action="session.paid", subject_id=str(session.pk)).count() == 1
    assert audit_verify() == []


def test_fifty_concurrent_different_success_events_pay_once(make_session):
    # given 50 distinct success events (different event ids) for one session
    session = make_session()
    bodies = [json.dumps(stripe_event(session, "payment_intent.succeeded" if i % 2 else "checkout.session.completed"))
              for i in range(BURST)]

    # when they all arrive at the same instant
    results = run_together(BURST, lambda i: _post_signed(bodies[i]))

    # then one paid the session and 49 were stored and ignored
    assert Counter(results) == Counter({(200, "processed"): 1, (200, "ignored"): BURST - 1})
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID
    assert WebhookEvent.objects.count() == BURST
    assert WebhookEvent.objects.filter(outcome=WebhookEvent.Outcome.IGNORED).count() == BURST - 1
    assert AuditEvent.objects.filter(action="session.paid", subject_id=str(session.pk)).count() == 1
    assert audit_verify() == []


def test_a_payment_racing_an_expiry_ends_in_exactly_one_terminal_state(make_session, merchant):
    # given an open session, a success event and the merchant's expire request, at the same instant
    session = make_session()
    body = json.dumps(stripe_event(session))

    def act(index: int) -> tuple[int, str]:
        if index == 0:
            return _post_signed(body)
        response = Client().post(f"/sessions/{session.pk}/expire", HTTP_X_API_KEY=merchant.plaintext_key)
        return response.status_code, response.json().get("status") or response.json()["error"]["code"]

    results = run_together(2, act)

    # then exactly one of them won, and the audit trail records only the winner's transition
    session = PaymentSession.objects.get(pk=session.pk)
    if session.status == Status.PAID:
        assert sorted(results) == [(200, "processed"), (409, "session_not_open")]
    else:
        # the expiry won: the money that arrived after it is kept as a late payment
        assert session.status == Status.FAILED
        assert sorted(results) == [(200, "failed"), (200, "late")]
        assert session.late_payments.count() == 1
    terminal = AuditEvent.objects.filter(subject_id=str(session.pk), action__in=["session.paid", "session.failed"])
    assert terminal.count() == 1
    assert audit_verify() == []


def test_concurrent_creates_with_one_idempotency_key_make_one_session(merchant):
    # given 20 identical create requests carrying the same Idempotency-Key
    count = 20
    body = json.dumps({"amount": "12.50", "currency": "EUR", "description": "Race"})

    def create(_: int) -> tuple[int, str, bool]:
        response = Client().post("/create_session", body, content_type="application/json",
                                 HTTP_X_API_KEY=merchant.plaintext_key, HTTP_IDEMPOTENCY_KEY="order-42")
        return response.status_code, response.json().get("session_id"), response.has_header("Idempotent-Replayed")

    # when they arrive at the same instant
    results = run_together(count, create)

    # then one session exists, every caller got it, and only one response was not a replay
    assert PaymentSession.objects.count() == 1
    session_id = str(PaymentSession.objects.get().pk)
    assert {(status, sid) for status, sid, _ in results} == {(201, session_id)}
    assert [replayed for *_, replayed in results].count(False) == 1
    assert AuditEvent.objects.filter(action="session.created").count() == 1
    assert audit_verify() == []


def test_concurrent_events_for_unknown_sessions_start_one_intact_system_chain():
    # given no audit chain for the system yet, and 20 distinct events naming no known session
    from audit.models import AuditChain

    assert not AuditChain.objects.filter(scope="system").exists()
    bodies = [json.dumps(stripe_event(f"9a1d7f3e-0000-4000-8000-{i:012d}")) for i in range(20)]

    # when they arrive at the same instant
    results = run_together(len(bodies), lambda i: _post_signed(bodies[i]))

    # then each is stored as unmatched and audited once, in one unbroken chain
    assert Counter(results) == Counter({(200, "unmatched"): len(bodies)})
    assert WebhookEvent.objects.filter(outcome=WebhookEvent.Outcome.UNMATCHED).count() == len(bodies)
    assert AuditEvent.objects.filter(scope="system", action="webhook.unmatched").count() == len(bodies)
    assert AuditChain.objects.get(scope="system").seq == len(bodies)
    assert audit_verify() == []
