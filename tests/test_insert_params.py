"""core.db.insert_params sends exactly what Django's own INSERT would send, faster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from audit.models import AuditEvent
from core import db
from sessions_app.models import PaymentSession, Status, WebhookEvent

pytestmark = pytest.mark.django_db


def _django_params(obj, fields):
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _comparable(values):
    # Jsonb wraps the object; compare what it wraps. Everything else by value and exact type.
    return [(type(v), v.obj if isinstance(v, Jsonb) else v) for v in values]


texts = st.text(max_size=40)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=60, deadline=None)
@given(amount=st.decimals(min_value=0, max_value=Decimal("1e12"), places=3), email=texts, name=texts,
       created=moments, paid=st.one_of(st.none(), moments), status=st.sampled_from(list(Status)),
       metadata=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_a_session_row_has_the_params_django_would_send(amount, email, name, created, paid, status,
                                                        metadata):
    session = PaymentSession(account_id=1, amount=amount, customer_email=email, customer_name=name,
                             created_at=created, expires_at=created + timedelta(hours=1), paid_at=paid,
                             status=status, metadata=metadata, id=uuid.uuid4())
    fields = db.insert_fields(PaymentSession)

    assert _comparable(db.insert_params(session, fields)) == _comparable(_django_params(session, fields))


def test_values_of_another_type_take_djangos_preparation(merchant):
    # A value the fast branch does not recognise (a str amount, a naive time, an int in a text
    # field) is converted by the field itself, exactly as a save() would.
    session = PaymentSession(account=merchant, amount="12.50", created_at=datetime(2026, 1, 1, 12, 0),
                             expires_at=datetime(2026, 1, 1, 13, 0, tzinfo=UTC), customer_name=42)
    fields = db.insert_fields(PaymentSession)

    with pytest.warns(RuntimeWarning, match="naive datetime"):
        sent = db.insert_params(session, fields)
    by_name = dict(zip((f.name for f in fields), sent, strict=True))
    assert by_name["amount"] == Decimal("12.50") and type(by_name["amount"]) is Decimal
    assert by_name["customer_name"] == "42"
    assert by_name["created_at"].tzinfo is not None


@pytest.mark.parametrize("model", [AuditEvent, WebhookEvent])
def test_other_rows_written_by_the_fast_paths_match_too(merchant, model):
    if model is AuditEvent:
        obj = AuditEvent(scope="acct:1", seq=3, actor="api", action="session.created", subject_type="session",
                         subject_id=str(uuid.uuid4()), account_id=merchant.pk, before={}, after={"status": "created"},
                         data={"amount": "5.00"}, hash="h", prev_hash="p")
    else:
        obj = WebhookEvent(provider="stripe", event_id="evt_1", event_type="payment_intent.succeeded",
                           payload={"id": "evt_1"})
    fields = db.insert_fields(model)

    assert _comparable(db.insert_params(obj, fields)) == _comparable(_django_params(obj, fields))


def test_only_fields_that_prepare_values_the_plain_way_are_sent_as_they_are():
    plain = {f.name for f in db.insert_fields(PaymentSession) if db._plain_type(f) is not None}
    if connection.vendor != "postgresql":
        assert plain == set()
        return
    # JSON and integers (sized types on psycopg 3) always go through Django; text, ids, money and times don't.
    assert {"metadata", "providers", "account", "payment_attempts_failed"}.isdisjoint(plain)
    assert {"id", "amount", "currency", "status", "customer_email", "created_at", "paid_at"} <= plain
