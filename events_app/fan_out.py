"""Fan-out: each new event gets a delivery for every enabled endpoint of its account and mode that
wants its type and existed when it happened.

Two ways, with one outcome (events_app/tests/test_fan_out.py runs the same cases on both):
- on PostgreSQL, one self-committing statement takes the new events, marks them, inserts their
  deliveries already handed on to a worker (`queued_until` set) and returns them, so the
  dispatcher publishes them without reading or updating them again. Under a steady stream of
  payments it runs a few times a second beside the web tier, and the ORM way measured about
  2.5 times its CPU per look (docs/performance.md);
- elsewhere (SQLite, or with core.db.ONE_STATEMENT off), the ORM: the deliveries are inserted
  as due, and deliveries_take_due hands them on.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import db
from events_app.delivery import by_endpoint
from events_app.models import Delivery, Event, WebhookEndpoint

# Deliveries handed on, grouped by endpoint, in event order: [(endpoint_id, [delivery_id, ...])].
Handed = list[tuple[str, list[int]]]


def events_fan_out(*, event_ids: list[str] | None = None, limit: int = 500) -> tuple[int, Handed]:
    """Give new events their deliveries. Returns the events done and the deliveries already handed on."""
    if db.one_statement():
        return _in_one_statement(event_ids=event_ids, limit=limit)
    return _with_the_orm(event_ids=event_ids, limit=limit), []


def _in_one_statement(*, event_ids: list[str] | None, limit: int) -> tuple[int, Handed]:
    now = timezone.now()
    until = now + timedelta(seconds=settings.MERCHANT_WEBHOOK_REQUEUE_SECONDS)
    done, handed = db.fetchone(_statement(), [event_ids, event_ids, limit, Delivery.Status.PENDING.value,
                                              now, until, now])
    return done, by_endpoint(handed)


@functools.cache
def _statement() -> str:
    events, deliveries, endpoints = db.tables(Event, Delivery, WebhookEndpoint)
    # The oldest new events not being fanned out by another look (SKIP LOCKED). An event that a
    # redelivery gave its delivery first keeps that one (ON CONFLICT), and it is not handed twice.
    return (
        f"WITH new AS (SELECT id FROM {events} WHERE NOT fanned_out "  # noqa: S608 - our own names
        f"AND (%s::text[] IS NULL OR id = ANY(%s::text[])) "
        f"ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED), "
        f"ev AS (UPDATE {events} AS e SET fanned_out = true FROM new WHERE e.id = new.id "
        f"RETURNING e.id, e.account_id, e.mode, e.type, e.created_at), "
        f"ins AS (INSERT INTO {deliveries} (endpoint_id, event_id, status, attempts, next_attempt_at, queued_until, "
        f"last_error, created_at) "
        f"SELECT ep.id, ev.id, %s, 0, %s, %s, '', %s FROM ev JOIN {endpoints} AS ep "
        f"ON ep.account_id = ev.account_id AND ep.mode = ev.mode AND ep.enabled AND ep.created_at <= ev.created_at "
        f"WHERE ev.type <> 'ping' AND (jsonb_exists(ep.event_types, '*') OR jsonb_exists(ep.event_types, ev.type)) "
        f"ORDER BY ev.created_at, ev.id, ep.id "
        f"ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING endpoint_id, id) "
        f"SELECT (SELECT count(*) FROM ev)::int, "
        f"(SELECT coalesce(json_agg(json_build_array(endpoint_id, id) ORDER BY id), '[]'::json) FROM ins)"
    )


def _with_the_orm(*, event_ids: list[str] | None, limit: int) -> int:
    now = timezone.now()
    with transaction.atomic():
        events = Event.objects.filter(fanned_out=False)
        if event_ids is not None:
            events = events.filter(pk__in=event_ids)
        events = list(events.select_for_update(skip_locked=True).order_by("created_at")
                      .only("pk", "account_id", "mode", "type", "created_at")[:limit])
        if not events:
            return 0
        endpoints: dict[tuple[int, str], list[WebhookEndpoint]] = {}
        for endpoint in WebhookEndpoint.objects.filter(enabled=True, account_id__in={e.account_id for e in events}) \
                .order_by("pk").only("pk", "account_id", "mode", "event_types", "created_at"):
            endpoints.setdefault((endpoint.account_id, endpoint.mode), []).append(endpoint)
        deliveries = [Delivery(endpoint_id=endpoint.pk, event_id=event.pk, next_attempt_at=now)
                      for event in events for endpoint in endpoints.get((event.account_id, event.mode), ())
                      if endpoint.wants(event.type) and endpoint.created_at <= event.created_at]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(fanned_out=True)
    return len(events)
