"""The one-statement fast path is contained: Django's cursor runs it (so query capture and
execute wrappers see it), it undoes itself with its own SQLSTATE, and the switch the suites
flip really chooses the path."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from audit.services import audit_verify
from sessions_app import lifecycle, one_statement
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.tests.conftest import stripe_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL only")


def _statements(run) -> list[str]:
    """Every statement `run` sends, as an execute wrapper sees it."""
    seen: list[str] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        run()
    return seen


ONE_STATEMENT = pytest.mark.parametrize("write_path", ["one_statement"], indirect=True)
LOCKED = pytest.mark.parametrize("write_path", ["locked"], indirect=True)


@ONE_STATEMENT
def test_execute_wrappers_see_the_one_statement_writes(write_path, make_session, deliver):
    # when a session is created and paid on the one-statement path (prepared statements)
    created: list = []
    create_sql = _statements(lambda: created.append(make_session()))
    pay_sql = _statements(lambda: deliver(stripe_event(created[0])))

    # then an execute wrapper saw each write as one statement
    assert [sql for sql in create_sql if sql.startswith("WITH inserted AS")] != []
    assert [sql for sql in pay_sql if sql.startswith("WITH moved AS")] != []
    # and they ran prepared, as in production
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'WITH moved AS%%'")
        assert cursor.fetchone()[0] == 1
    assert PaymentSession.objects.get(pk=created[0].pk).status == Status.PAID
    assert audit_verify() == []


@ONE_STATEMENT
def test_query_capture_sees_the_one_statement_writes_with_their_text(write_path, make_session, deliver):
    with CaptureQueriesContext(connection) as captured:
        deliver(stripe_event(make_session()))
    captured_sql = [query["sql"] for query in captured.captured_queries]
    assert any(sql.startswith("WITH inserted AS") for sql in captured_sql)
    assert any(sql.startswith("WITH moved AS") for sql in captured_sql)


@LOCKED
def test_the_locked_path_runs_no_one_statement_write(write_path, make_session, deliver):
    statements = _statements(lambda: deliver(stripe_event(make_session())))
    assert not [sql for sql in statements if sql.startswith(("WITH moved AS", "WITH inserted AS"))]
    assert any("FOR UPDATE" in sql for sql in statements)


def test_payments_abort_raises_its_own_sqlstate():
    with pytest.raises(DatabaseError) as raised, connection.cursor() as cursor:
        cursor.execute("SELECT payments_abort(%s)", ["a reason"])
    assert raised.value.__cause__.sqlstate == one_statement.ABORT_SQLSTATE


@ONE_STATEMENT
def test_a_raced_event_id_undoes_the_statement_and_returns_none(write_path, make_session, deliver):
    # given an event id already stored for one session
    first, second = make_session(), make_session()
    event = stripe_event(first)
    deliver(event)

    # when the same id moves a second session, called through the contract itself
    event["data"]["object"]["metadata"]["session_id"] = str(second.pk)
    parsed = stripe_provider.parse(json.dumps(event).encode())
    result = lifecycle._apply_in_one_statement(parsed, session_id=second.pk, actor="test")

    # then it wrote nothing and left the decision to the locked path
    assert result is None
    second.refresh_from_db()
    assert second.status == Status.CREATED
    assert not WebhookEvent.objects.filter(session=second).exists()
    assert audit_verify() == []
