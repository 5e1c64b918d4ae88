"""The relay: paid sessions announced by PostgreSQL leave for the workers in batches."""

from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from core.logs import request_id_var
from invoices_app import claims, relay, tasks
from invoices_app.models import Fulfilment
from invoices_app.tests.conftest import REDIS_TEST_URL, create_session, mark_paid, paid_event_body, published
from sessions_app.lifecycle import payment_event_apply
from sessions_app.providers import stripe_provider
from sessions_app.services import session_expire, session_fulfil_anyway

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listener():
    with relay.connect() as conn:
        taken = relay.Listener.take(conn)
        assert taken is not None
        yield taken


def test_paid_sessions_leave_as_one_task_with_their_request_ids(broker, merchant, listener, client):
    # given five sessions paid while serving requests with ids: a webhook (one statement) and
    # the lifecycle service (the locked path)
    sessions = [create_session(merchant) for _ in range(5)]
    body = paid_event_body(sessions[0])
    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body), HTTP_X_REQUEST_ID="req-0")
    assert response.status_code == 200
    for i, session in enumerate(sessions[1:], start=1):
        token = request_id_var.set(f"req-{i}")
        try:
            mark_paid(session)
        finally:
            request_id_var.reset(token)
    redis_client = redis.Redis.from_url(REDIS_TEST_URL)
    assert published(redis_client, broker.queue) == []  # the requests published nothing

    # when the relay takes a round
    relayed = listener.relay_once(timeout=5)

    # then one task carries all five, in the order they were paid, each with its request id
    assert relayed == 5
    [message] = published(redis_client, broker.queue)
    assert message["task"] == "invoices_app.tasks.fulfil_sessions"
    assert message["args"][0] == [{"session_id": str(s.pk), "request_id": f"req-{i}"} for i, s in enumerate(sessions)]


def test_a_round_takes_at_most_one_batch(broker, merchant, listener, settings):
    settings.FULFILMENT_RELAY_BATCH = 3
    for _ in range(7):
        mark_paid(create_session(merchant))

    counts = [listener.relay_once(timeout=1) for _ in range(4)]

    assert counts == [3, 3, 1, 0]
    assert [len(m["args"][0]) for m in published(redis.Redis.from_url(REDIS_TEST_URL), broker.queue)] == [3, 3, 1]


def test_one_relay_per_database(broker, listener):
    # a second listener (another worker) waits while the first holds the relay lock
    with relay.connect() as other:
        assert relay.Listener.take(other) is None


def test_a_rolled_back_payment_announces_nothing(broker, merchant, listener):
    from django.db import transaction

    session = create_session(merchant)
    with pytest.raises(RuntimeError), transaction.atomic():
        mark_paid(session)
        raise RuntimeError("the transaction fails after the transition")

    assert listener.relay_once(timeout=0.5) == 0


def test_a_session_that_fails_in_a_batch_is_retried_on_its_own(monkeypatch):
    # given a batch of three where the second fails
    done, retried = [], []

    def run(*, session_id):
        if session_id == "b":
            raise OSError("SMTP down")
        done.append(session_id)

    monkeypatch.setattr(tasks.fulfilment, "fulfilment_run", run)
    monkeypatch.setattr(tasks.fulfil_session, "apply_async", lambda args, countdown: retried.append(args[0]))

    # when the batch runs
    tasks.fulfil_sessions.run([{"session_id": s, "request_id": "-"} for s in ("a", "b", "c")])

    # then the others are done and the failed one is queued alone, with fulfil_session's retries
    assert done == ["a", "c"]
    assert retried == ["b"]


def _relay_lock_held() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        return cursor.fetchone()[0] > 0


def test_when_the_relaying_worker_stops_another_takes_over(broker, merchant):
    from invoices_app.tests.conftest import wait_until

    # given two workers' relays, the first of which holds the database's relay lock
    redis_client = redis.Redis.from_url(REDIS_TEST_URL)
    first = relay.Relay()
    first.start()
    wait_until(_relay_lock_held, timeout=10, message="the first relay to take the lock")
    second = relay.Relay()
    second.start()
    try:
        # when the first stops (its connection, and with it the lock, goes)
        first.stop()
        assert not first.is_alive()

        # then the second relays the sessions paid from then on
        def relayed() -> bool:
            mark_paid(create_session(merchant))
            return bool(published(redis_client, broker.queue))

        wait_until(relayed, timeout=15, interval=0.5, message="the second relay to take over")
        assert published(redis_client, broker.queue)[0]["task"] == "invoices_app.tasks.fulfil_sessions"
    finally:
        second.stop()


def test_a_relay_that_takes_over_hands_on_what_was_paid_while_nobody_listened(broker, merchant):
    # given two sessions paid while no relay listened, one of them held by a live run
    free, held = create_session(merchant), create_session(merchant)
    mark_paid(free)
    mark_paid(held)
    with claims.run_claim(held.pk) as claimed:
        assert claimed

        # when a relay takes over
        with relay.connect() as conn:
            assert relay.Listener.take(conn) is not None

    # then the unheld one is handed on, ahead of the queue; the held one is left to its run
    [message] = published(redis.Redis.from_url(REDIS_TEST_URL), broker.queue)
    assert message["args"][0] == [{"session_id": str(free.pk), "request_id": "relay-resume"}]
    assert message["priority"] == 0


def test_the_sweep_hands_on_a_run_whose_worker_died_once_per_rehand_window(broker, merchant, listener):
    # given a run that began two minutes ago, recorded no error and holds no claim (its worker died)
    session = create_session(merchant)
    mark_paid(session)
    Fulfilment.objects.create(session=session, attempts=1, started_at=timezone.now() - timedelta(minutes=2))
    finished = create_session(merchant)
    mark_paid(finished)
    Fulfilment.objects.create(session=finished, attempts=1, started_at=timezone.now() - timedelta(minutes=2),
                              completed_at=timezone.now())

    # when the relay sweeps twice in a row
    first, second = listener.resume(look_back=False), listener.resume(look_back=False)

    # then the stopped run was handed on once, ahead of the queue, and marked as handed on
    assert (first, second) == (1, 0)
    [message] = published(redis.Redis.from_url(REDIS_TEST_URL), broker.queue)
    assert message["args"][0] == [{"session_id": str(session.pk), "request_id": "relay-resume"}]
    assert message["priority"] == 0
    assert Fulfilment.objects.get(pk=session.pk).queued_at is not None


def test_the_sweep_leaves_a_run_that_is_alive_or_that_failed(broker, merchant, listener):
    alive, failed = create_session(merchant), create_session(merchant)
    for session in (alive, failed):
        mark_paid(session)
    started = timezone.now() - timedelta(minutes=2)
    Fulfilment.objects.create(session=alive, attempts=1, started_at=started)
    # A run that failed is retried by its task, with backoff; the sweep leaves it alone.
    Fulfilment.objects.create(session=failed, attempts=1, started_at=started, last_error="SMTPException: down")

    with claims.run_claim(alive.pk):
        assert listener.resume(look_back=False) == 0
    assert published(redis.Redis.from_url(REDIS_TEST_URL), broker.queue) == []


def test_a_late_payment_fulfilled_anyway_while_nobody_listened_is_handed_on_by_the_next_relay(broker, merchant):
    # given a session paid after it expired, and the merchant's "fulfil anyway" while no relay ran
    session = create_session(merchant)
    session_expire(session_id=session.pk, actor="test")
    payment_event_apply(stripe_provider.parse(paid_event_body(session).encode()))
    session_fulfil_anyway(session_id=session.pk, actor="test")

    # when a relay takes over
    with relay.connect() as conn:
        assert relay.Listener.take(conn) is not None

    # then the session is handed on to be delivered (beside the merchant's late-payment email)
    messages = published(redis.Redis.from_url(REDIS_TEST_URL), broker.queue)
    [message] = [m for m in messages if m["task"] == "invoices_app.tasks.fulfil_sessions"]
    assert message["args"][0] == [{"session_id": str(session.pk), "request_id": "relay-resume"}]
    assert [m["task"] for m in messages if m is not message] == ["invoices_app.tasks.notify_late_payment"]

