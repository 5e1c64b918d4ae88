"""The relay: paid sessions pushed one by one leave for the workers in batches."""

import base64
import json

import pytest
import redis

from invoices_app import relay, services, tasks
from invoices_app.tests.conftest import REDIS_TEST_URL, create_session, mark_paid
from payments_site.logs import request_id_var

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _published(client: redis.Redis, queue: str) -> list[dict]:
    """The Celery messages waiting in a queue, oldest first: task name and arguments."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # LPUSHed: the oldest is last
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": args})
    return messages


def test_paid_sessions_pushed_one_by_one_leave_as_one_task(broker, merchant, settings):
    # given five sessions paid while serving requests with ids (each payment hands itself over)
    settings.FULFILMENT_RELAY_BATCH = 20
    client = redis.Redis.from_url(REDIS_TEST_URL)
    sessions = [create_session(merchant) for _ in range(5)]
    for i, session in enumerate(sessions):
        token = request_id_var.set(f"req-{i}")
        try:
            mark_paid(session)
        finally:
            request_id_var.reset(token)
    assert client.llen(relay.pending_key()) == 5

    # when the relay takes a round
    relayed = relay.relay_once(client=client, key=relay.pending_key(), timeout=1)

    # then one task carries all five, in the order they were paid, each with its request id
    assert relayed == 5
    assert client.llen(relay.pending_key()) == 0
    [message] = _published(client, broker.queue)
    assert message["task"] == "invoices_app.tasks.fulfil_sessions"
    assert message["args"][0] == [{"session_id": str(s.pk), "request_id": f"req-{i}"} for i, s in enumerate(sessions)]


def test_a_round_takes_at_most_one_batch(broker, merchant, settings):
    settings.FULFILMENT_RELAY_BATCH = 3
    client = redis.Redis.from_url(REDIS_TEST_URL)
    for _ in range(7):
        relay.relay_push(session_id="00000000-0000-0000-0000-000000000000", request_id="-")

    counts = [relay.relay_once(client=client, key=relay.pending_key(), timeout=1) for _ in range(4)]

    assert counts == [3, 3, 1, 0]
    assert [len(m["args"][0]) for m in _published(client, broker.queue)] == [3, 3, 1]


def test_a_session_that_fails_in_a_batch_is_retried_on_its_own(monkeypatch, merchant):
    # given a batch of three where the second fails
    done, retried = [], []

    def run(*, session_id):
        if session_id == "b":
            raise OSError("SMTP down")
        done.append(session_id)

    monkeypatch.setattr(services, "fulfilment_run", run)
    monkeypatch.setattr(tasks.fulfil_session, "apply_async", lambda args, countdown: retried.append(args[0]))

    # when the batch runs
    tasks.fulfil_sessions.run([{"session_id": s, "request_id": "-"} for s in ("a", "b", "c")])

    # then the others are done and the failed one is queued alone, with fulfil_session's retries
    assert done == ["a", "c"]
    assert retried == ["b"]
