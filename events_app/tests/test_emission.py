"""Every change the merchant hears about writes its event with the change, on both write paths."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from events_app.models import Event
from events_app.services import event_emit
from invoices_app.services.numbering import invoice_issue
from keys_app.entitlements import entitlement_key_issue, entitlement_key_revoke, entitlement_key_rotate
from sessions_app.lifecycle import payment_event_apply
from sessions_app.providers import stripe_provider
from sessions_app.services import session_expire
from sessions_app.tests.conftest import stripe_event

pytestmark = pytest.mark.django_db(transaction=True)


def apply(session, event_type: str):
    return payment_event_apply(stripe_provider.parse(json.dumps(stripe_event(session, event_type)).encode()))


def types_of(session) -> list[str]:
    return list(Event.objects.filter(object_id=str(session.pk)).order_by("created_at", "id")
                .values_list("type", flat=True))


def test_session_events_on_each_write_path(make_session, write_path):
    paid = make_session()
    apply(paid, "payment_intent.processing")
    apply(paid, "payment_intent.payment_failed")
    apply(paid, "payment_intent.succeeded")
    assert types_of(paid) == ["session.created", "session.pending", "session.payment_attempt_failed",
                              "session.paid"]
    event = Event.objects.get(object_id=str(paid.pk), type="session.paid")
    assert event.data["status"] == "paid" and event.data["id"] == str(paid.pk) and event.mode == "test"
    assert event.data["paid_at"] and event.data["provider"] == "stripe"

    failed = make_session()
    apply(failed, "payment_intent.canceled")
    apply(failed, "payment_intent.succeeded")  # money after the end: a late payment
    assert types_of(failed) == ["session.created", "session.failed", "session.late_payment"]
    late = Event.objects.get(object_id=str(failed.pk), type="session.late_payment")
    assert late.data["late_payment"]["amount"] == "99.99"

    expired = make_session()
    apply(expired, "checkout.session.expired")
    by_merchant = make_session()
    session_expire(session_id=by_merchant.pk, actor="test")
    assert types_of(expired)[-1] == types_of(by_merchant)[-1] == "session.expired"


def test_a_replayed_delivery_writes_no_second_event(make_session, write_path):
    session = make_session()
    body = stripe_event(session)
    for _ in range(2):
        payment_event_apply(stripe_provider.parse(json.dumps(body).encode()))
    assert types_of(session).count("session.paid") == 1


def test_invoice_and_key_events(make_session, merchant):
    session = make_session()
    apply(session, "payment_intent.succeeded")
    session.refresh_from_db()
    invoice = invoice_issue(session=session)
    issued = entitlement_key_issue(account=merchant, session_id=session.pk, customer_email="b@example.com",
                                   actor="test")
    rotated = entitlement_key_rotate(key=issued.key, actor="test")
    entitlement_key_revoke(key=rotated.key, actor="test")
    invoice_event = Event.objects.get(type="invoice.issued")
    assert invoice_event.object_id == str(invoice.pk) and invoice_event.data["number"] == invoice.number
    assert invoice_event.data["gross"] == "99.99"
    keys = list(Event.objects.filter(type__startswith="key.").order_by("created_at", "id").values_list("type", "data"))
    assert [t for t, _ in keys] == ["key.issued", "key.rotated", "key.revoked"]
    # the key itself is never in an event, only its display form
    assert issued.plaintext not in str(keys) and rotated.plaintext not in str(keys)


def test_event_emit_refuses_outside_a_transaction_and_rolls_back_with_it(merchant):
    with pytest.raises(RuntimeError):
        event_emit(account_id=merchant.pk, mode="test", type="session.created", data={})
    with pytest.raises(LookupError), transaction.atomic():
        event_emit(account_id=merchant.pk, mode="test", type="session.created", data={})
        raise LookupError("the change failed")
    assert not Event.objects.exists()


def test_the_one_statement_writes_stay_within_the_parameters_psycopg_parses_once(make_session, monkeypatch):
    # Beyond this many parameters psycopg parses the SQL anew on every execution (measured: about
    # 0.4 ms of CPU per create_session); the event rides in these statements as one parameter.
    from django.db import connection
    from psycopg import _queries

    from core import db

    if connection.vendor != "postgresql":
        pytest.skip("the one-statement paths are PostgreSQL only")
    monkeypatch.setattr(db, "ONE_STATEMENT", True)
    counts = []

    def count(execute, sql, params, many, context):
        counts.append((sql.split()[0:3], len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        session = make_session()
        apply(session, "payment_intent.succeeded")
    assert types_of(session) == ["session.created", "session.paid"]
    written = [n for words, n in counts if words[:2] in (["WITH", "inserted"], ["WITH", "moved"])]
    assert len(written) == 2 and max(written) <= _queries.MAX_CACHED_STATEMENT_PARAMS, counts
