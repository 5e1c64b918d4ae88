"""Structured logs: one JSON object per line, each carrying the request id."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from core.logs import JsonFormatter, RequestIdFilter
from invoices_app.models import Fulfilment
from invoices_app.tests.conftest import (  # noqa: F401 - fixtures shared with the fulfilment tests
    broker,
    create_session,
    paid_event_body,
    smtp_server,
    wait_until,
    worker_env,
    workers,
)
from sessions_app.providers import stripe_provider


@pytest.fixture
def json_log():
    """The production handler (JSON formatter + request id filter) on the root logger, into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def _records(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_a_callers_request_id_is_echoed_and_on_every_log_line(api, json_log):
    # when a request with X-Request-ID fails validation (Django logs the 400)
    response = api.post("/create_session", {"amount": "-1"}, format="json", HTTP_X_REQUEST_ID="req-abc.123")
    # then the response carries the same id, and so does the log line about it
    assert response["X-Request-ID"] == "req-abc.123"
    records = _records(json_log)
    assert any(r["message"] == "Bad Request: /create_session" and r["request_id"] == "req-abc.123" for r in records)


def test_a_missing_or_hostile_request_id_is_replaced(anon):
    generated = anon.get("/session/nope/status")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    hostile = anon.get("/session/nope/status", HTTP_X_REQUEST_ID='x" \n{"level": "CRITICAL"}')["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", hostile)
    assert anon.get("/session/nope/status")["X-Request-ID"] != generated


def test_each_record_is_one_line_of_json_even_with_newlines_and_extras(json_log):
    logging.getLogger("payments.test").warning("two\nlines", extra={"session_id": "s-1", "amount": 3})
    lines = json_log.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["message"] == "two\nlines"
    assert record["session_id"] == "s-1" and record["amount"] == 3
    assert record["level"] == "WARNING" and record["logger"] == "payments.test"
    assert record["request_id"] == "-"


def test_exceptions_are_kept_inside_the_json_object(json_log):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("payments.test").exception("failed")
    (record,) = _records(json_log)
    assert "ValueError: boom" in record["exc_info"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_workers_log_lines_are_json_and_carry_the_request_id_of_the_webhook(
        merchant, workers, smtp_server, client):  # noqa: F811 - the imported fixtures
    # given a worker logging as in production
    worker = workers(LOG_FORMAT="json", LOG_LEVEL="INFO")
    session = create_session(merchant)

    # when the paid webhook arrives with a request id
    body = paid_event_body(session)
    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body), HTTP_X_REQUEST_ID="req-paid-1")
    assert response.status_code == 200
    wait_until(lambda: Fulfilment.objects.filter(pk=session.pk, completed_at__isnull=False).exists(),
               timeout=60, message="fulfilment on the worker")

    # then the worker's log lines are JSON, and those of the task carry the webhook's request id
    lines = [line for line in worker.log.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records, worker.log.read_text()[-2000:]
    task_lines = [r for r in records if r["request_id"] == "req-paid-1"]
    assert task_lines, [r["message"] for r in records]
    assert any("fulfil_session" in r["message"] or r["logger"].startswith("invoices_app") for r in task_lines)
