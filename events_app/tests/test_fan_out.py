"""Fan-out: which endpoints get a delivery of which event, the same on both ways of writing them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from events_app import delivery, dispatch, fan_out
from events_app.models import Delivery, Event, WebhookEndpoint
from invoices_app.tasks import fulfil_sessions
from invoices_app.tests.conftest import published

pytestmark = pytest.mark.django_db


def endpoint(account, *, mode="test", types=("*",), enabled=True, created_at=None) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(account=account, mode=mode, url="https://hooks.example.com/in",
                                          event_types=list(types), enabled=enabled, secret_sealed="sealed",
                                          created_at=created_at or timezone.now() - timedelta(hours=1))


def event(account, type_="session.paid", *, mode="test", at=None) -> Event:
    return Event.objects.create(account=account, mode=mode, type=type_, created_at=at or timezone.now())


def handed_on(handed) -> set[tuple[str, int]]:
    return {(endpoint_id, pk) for endpoint_id, ids in handed for pk in ids}


def fan_out_and_hand_on(**kwargs) -> tuple[int, list]:
    """What the dispatcher does: fan out, then take what is due; either may have handed them on."""
    done, handed = fan_out.events_fan_out(**kwargs)
    return done, handed + delivery.deliveries_take_due()


def test_each_event_reaches_the_endpoints_that_want_it(merchant, other_merchant, write_path):
    everything, paid_only = endpoint(merchant), endpoint(merchant, types=["session.paid"])
    live, theirs = endpoint(merchant, mode="live"), endpoint(other_merchant)
    endpoint(merchant, enabled=False)
    paid, created = event(merchant), event(merchant, "session.created")
    live_paid, ping, their_paid = event(merchant, mode="live"), event(merchant, "ping"), event(other_merchant)
    # made after the event happened: it starts with the events after it
    endpoint(merchant, created_at=timezone.now())

    done, handed = fan_out_and_hand_on()

    expected = {(everything.pk, paid.pk), (paid_only.pk, paid.pk), (everything.pk, created.pk),
                (live.pk, live_paid.pk), (theirs.pk, their_paid.pk)}
    rows = Delivery.objects.all()
    assert {(d.endpoint_id, d.event_id) for d in rows} == expected
    assert done == 5 and not Event.objects.filter(fanned_out=False).exclude(pk=ping.pk).exists()
    # every delivery is handed on exactly once, marked as such, due now
    assert handed_on(handed) == {(d.endpoint_id, d.pk) for d in rows}
    assert sum(len(ids) for _, ids in handed) == len(expected)
    assert all(d.status == Delivery.Status.PENDING and d.queued_until > timezone.now() and d.attempts == 0
               for d in rows)
    # an endpoint's deliveries go in the order of their events
    mine = next(ids for endpoint_id, ids in handed if endpoint_id == everything.pk)
    assert [Delivery.objects.get(pk=pk).event_id for pk in mine] == [paid.pk, created.pk]

    # done once: a second look finds nothing new and hands nothing on again
    assert fan_out_and_hand_on() == (0, [])
    assert Delivery.objects.count() == len(expected)


def test_a_delivery_made_first_by_a_redelivery_is_kept_and_not_handed_twice(merchant, write_path):
    hooks = endpoint(merchant)
    first, second = event(merchant), event(merchant, "session.created")
    early = Delivery.objects.create(endpoint=hooks, event=first, next_attempt_at=timezone.now(),
                                    queued_until=timezone.now() + timedelta(minutes=5))

    done, handed = fan_out_and_hand_on()

    assert done == 2
    assert Delivery.objects.filter(event=first).get().pk == early.pk
    assert handed_on(handed) == {(hooks.pk, Delivery.objects.get(event=second).pk)}


def test_it_takes_the_oldest_first_and_only_the_events_asked_for(merchant, write_path):
    hooks = endpoint(merchant)
    now = timezone.now()
    old, middle, new = (event(merchant, at=now - timedelta(seconds=s)) for s in (30, 20, 10))

    assert fan_out.events_fan_out(event_ids=[new.pk])[0] == 1
    assert set(Delivery.objects.values_list("event_id", flat=True)) == {new.pk}
    assert fan_out.events_fan_out(limit=1)[0] == 1
    assert set(Delivery.objects.values_list("event_id", flat=True)) == {new.pk, old.pk}
    assert fan_out.events_fan_out(limit=5)[0] == 1
    assert Delivery.objects.filter(endpoint=hooks, event=middle).exists()


def test_the_dispatcher_queues_deliveries_behind_fulfilment(merchant, broker, write_path):
    # given a backlog of deliveries handed on, then a paid session to fulfil
    hooks = endpoint(merchant)
    events = [event(merchant) for _ in range(dispatch.BATCH + 1)]
    handed, more = dispatch.dispatch_once()
    fulfil_sessions.delay([{"session_id": "s-1", "request_id": "r-1"}])

    # then a worker takes the fulfilment first, and the deliveries in batches of the endpoint's, in order
    messages = published(redis.Redis.from_url(broker.url), broker.queue)
    assert [m["task"] for m in messages] == ["invoices_app.tasks.fulfil_sessions", *2 * ["events_app.tasks.deliveries_send"]]
    assert [m["priority"] for m in messages[1:]] == [9, 9] and handed == len(events) and not more
    sent = [pk for m in messages[1:] for pk in m["args"][0]]
    assert [Delivery.objects.get(pk=pk).event_id for pk in sent] == [e.pk for e in events]
    assert Delivery.objects.filter(endpoint=hooks).count() == len(events)


class _Clock:
    """The dispatcher's stop event, recording each wait; it stops the loop after a few."""

    def __init__(self, looks: int) -> None:
        self.waits: list[float] = []
        self.looks = looks

    def is_set(self) -> bool:
        return self.looks <= 0

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


@pytest.mark.parametrize(("answers", "waits"), [
    # a steady stream: every look found something, and every look is followed by the interval
    ([(3, False), (1, False), (7, False)], [0.25, 0.25, 0.25]),
    # a backlog (a full batch): it looks again at once until the backlog is gone
    ([(200, True), (200, True), (40, False)], [0.25]),
])
def test_the_dispatcher_waits_its_interval_unless_a_backlog_remains(monkeypatch, settings, answers, waits):
    settings.MERCHANT_WEBHOOK_DISPATCH_INTERVAL_MS = 250
    dispatcher = dispatch.Dispatcher()
    clock = _Clock(len(answers))
    dispatcher._stop_event = clock
    monkeypatch.setattr(dispatcher, "_take", lambda: True)
    replies = iter(answers)

    def look():
        clock.looks -= 1
        return next(replies)

    monkeypatch.setattr(dispatch, "dispatch_once", look)
    monkeypatch.setattr(dispatch.connection, "close", lambda: None)
    dispatcher.run()
    assert clock.waits == waits
