"""Recording events, and the merchant's webhook endpoints. Delivery is in events_app.delivery."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from core import db, errors
from events_app import destinations, handoff, secrets_box
from events_app.delivery import deliveries_skip_pending, endpoint_failures_reset
from events_app.models import Delivery, Event, WebhookEndpoint

# The types an endpoint may ask for (refund.* come with refunds); "*" asks for all.
EVENT_TYPES = (
    "session.created", "session.pending", "session.payment_attempt_failed", "session.paid", "session.failed",
    "session.expired", "session.late_payment", "invoice.issued", "key.issued", "key.revoked", "key.rotated",
    "refund.created", "refund.succeeded", "refund.failed", "payment_link.created", "payment_link.updated",
)
ROTATION_OVERLAP = timedelta(hours=24)


def snapshot(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as it will be stored and sent: JSON types only (Decimals as strings, times in ISO 8601)."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def event_emit(*, account_id: int, mode: str, type: str, data: dict[str, Any], object_id: str = "") -> Event:
    """Record that `type` happened, inside the caller's transaction.

    Call it where the change itself is written, so that a rolled-back change leaves no event behind.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_emit must run inside the transaction of the change it reports")
    event = Event.objects.create(account_id=account_id, mode=mode, type=type, data=snapshot(data),
                                 object_id=str(object_id))
    if not handoff.dispatcher_active():
        # No dispatcher listens (SQLite, no broker): hand this event on when it commits.
        transaction.on_commit(partial(handoff.queue, "events_fan_out", event.pk))
    return event


def event_build(*, account_id: int, mode: str, type: str, data: dict[str, Any], object_id: str = "") -> Event:
    """An event in memory, for a caller that writes it in its own statement (event_insert_statement).

    `data` must already hold JSON types only: the one-statement paths skip snapshot()'s round trip.
    """
    return Event(account_id=account_id, mode=mode, type=type, data=data, object_id=object_id)


@dataclass(frozen=True)
class EventStatement:
    """A CTE that inserts an event, and its parameters, for a caller's one-statement write."""

    cte: str
    params: list[Any]


def event_insert_statement(event: Event, *, only_if: str) -> EventStatement:
    """The CTE that inserts `event` if the caller's CTE `only_if` has a row (one row there, one event).

    The event commits with the caller's change or not at all, as event_emit guarantees for the ORM
    paths; the workers' dispatcher finds it (no publish is needed from the statement). The row
    travels as one JSON parameter: the hot statements stay within psycopg's limit of 50
    parameters for a statement whose parsing it caches (beyond it, it parses the SQL anew on
    every request, which measured about 0.4 ms of CPU per create_session).
    """
    row = {column: getattr(event, attname) for column, attname in _event_columns()}
    row["created_at"] = event.created_at.isoformat()
    return EventStatement(_event_cte(only_if), [json.dumps(row, separators=(",", ":"))])


@functools.cache
def _event_columns() -> tuple[tuple[str, str], ...]:
    return tuple((f.column, f.attname) for f in Event._meta.concrete_fields)


@functools.cache
def _event_cte(only_if: str) -> str:
    quote = connection.ops.quote_name
    (table,) = db.tables(Event)
    # r.* has the table's columns in the table's order, as an INSERT without a column list takes them.
    return (f"merchant_event AS (INSERT INTO {table} SELECT r.* FROM {quote(only_if)}, "  # noqa: S608 - names are ours
            f"jsonb_populate_record(NULL::{table}, %s::jsonb) AS r RETURNING 1)")


# ---------------------------------------------------------------- endpoints


def _event_types(types: list[str] | None) -> list[str]:
    if not types:
        raise errors.DomainError("event_types_invalid", "event_types must list event types, or [\"*\"].",
                                 field="event_types")
    unknown = sorted(set(types) - {"*", *EVENT_TYPES})
    if unknown:
        raise errors.DomainError("event_types_invalid", f"Unknown event types: {', '.join(unknown)}.",
                                 field="event_types")
    return ["*"] if "*" in types else sorted(set(types))


def endpoint_create(*, account_id: int, mode: str, url: str, event_types: list[str], description: str = "",
                    actor: str) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret, which exists in plain text only in what this returns."""
    destinations.destination_check(url, mode=mode)
    secret = secrets_box.new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(account_id=account_id, mode=mode, url=url,
                                                  event_types=_event_types(event_types), description=description,
                                                  secret_sealed=secrets_box.seal(secret))
        audit_record(action="webhook_endpoint.created", subject_type="webhook_endpoint", subject_id=endpoint.pk,
                     account_id=account_id, actor=actor,
                     after={"url": url, "mode": mode, "event_types": endpoint.event_types})
    return endpoint, secret


def endpoint_update(*, endpoint: WebhookEndpoint, actor: str, url: str | None = None,
                    event_types: list[str] | None = None, description: str | None = None,
                    enabled: bool | None = None) -> WebhookEndpoint:
    if url is not None:
        destinations.destination_check(url, mode=endpoint.mode)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = {"url": endpoint.url, "event_types": endpoint.event_types, "enabled": endpoint.enabled}
        if url is not None:
            endpoint.url = url
        if event_types is not None:
            endpoint.event_types = _event_types(event_types)
        if description is not None:
            endpoint.description = description
        if enabled is True and not endpoint.enabled:
            _reenable(endpoint)
        elif enabled is False and endpoint.enabled:
            endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, timezone.now(), "by the merchant"
            deliveries_skip_pending(endpoint=endpoint, reason="endpoint disabled", now=timezone.now())
        endpoint.save()
        audit_record(action="webhook_endpoint.updated", subject_type="webhook_endpoint", subject_id=endpoint.pk,
                     account_id=endpoint.account_id, actor=actor, before=before,
                     after={"url": endpoint.url, "event_types": endpoint.event_types, "enabled": endpoint.enabled})
    return endpoint


def _reenable(endpoint: WebhookEndpoint) -> None:
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = True, None, ""
    endpoint_failures_reset(endpoint)


def endpoint_reenable(*, endpoint: WebhookEndpoint, actor: str) -> WebhookEndpoint:
    return endpoint_update(endpoint=endpoint, actor=actor, enabled=True)


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
    audit_record(action="webhook_endpoint.deleted", subject_type="webhook_endpoint", subject_id=endpoint.pk,
                 account_id=endpoint.account_id, actor=actor, before={"url": endpoint.url})
    endpoint.delete()


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: str) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing beside it for ROTATION_OVERLAP."""
    secret = secrets_box.new_secret()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret_sealed = endpoint.secret_sealed
        endpoint.previous_secret_expires_at = timezone.now() + ROTATION_OVERLAP
        endpoint.secret_sealed = secrets_box.seal(secret)
        endpoint.save(update_fields=["previous_secret_sealed", "previous_secret_expires_at", "secret_sealed",
                                     "updated_at"])
        audit_record(action="webhook_endpoint.secret_rotated", subject_type="webhook_endpoint",
                     subject_id=endpoint.pk, account_id=endpoint.account_id, actor=actor,
                     after={"previous_secret_expires_at": endpoint.previous_secret_expires_at})
    return endpoint, secret


def endpoint_send_test(*, endpoint: WebhookEndpoint, actor: str) -> Delivery:
    """A `ping` event for this endpoint alone, delivered now (even to a disabled endpoint)."""
    with transaction.atomic():
        event = Event.objects.create(account_id=endpoint.account_id, mode=endpoint.mode, type="ping",
                                     object_id=endpoint.pk, data={"endpoint_id": endpoint.pk}, fanned_out=True)
        delivery = Delivery.objects.create(endpoint=endpoint, event=event, next_attempt_at=timezone.now(),
                                           queued_until=timezone.now() + timedelta(minutes=5))
        audit_record(action="webhook_endpoint.test_sent", subject_type="webhook_endpoint", subject_id=endpoint.pk,
                     account_id=endpoint.account_id, actor=actor, data={"event_id": event.pk})
        transaction.on_commit(partial(handoff.queue, "delivery_send", delivery.pk, redelivery=True))
    return delivery


def delivery_redeliver(*, delivery: Delivery, actor: str) -> Delivery:
    """Send a delivery again now, with the same webhook-id; its attempt row says it is a redelivery."""
    if not delivery.endpoint.enabled:
        raise errors.Conflict("endpoint_disabled", "The endpoint is disabled: re-enable it first.")
    with transaction.atomic():
        audit_record(action="webhook_delivery.redelivered", subject_type="webhook_endpoint",
                     subject_id=delivery.endpoint_id, account_id=delivery.endpoint.account_id, actor=actor,
                     data={"event_id": delivery.event_id, "delivery_id": delivery.pk})
        transaction.on_commit(partial(handoff.queue, "delivery_send", delivery.pk, redelivery=True))
    return delivery


def event_redeliver(*, event: Event, actor: str) -> int:
    """Redeliver an event to every endpoint that had it (or now wants it)."""
    count = 0
    for endpoint in WebhookEndpoint.objects.filter(account_id=event.account_id, mode=event.mode, enabled=True):
        delivery = Delivery.objects.filter(endpoint=endpoint, event=event).first()
        if delivery is None:
            if not endpoint.wants(event.type):
                continue
            now = timezone.now()
            delivery, _ = Delivery.objects.get_or_create(endpoint=endpoint, event=event, defaults={
                "next_attempt_at": now, "queued_until": now + timedelta(minutes=5)})
        delivery_redeliver(delivery=delivery, actor=actor)
        count += 1
    return count


def events_purge(*, now=None) -> int:
    """Drop events (and their deliveries) older than EVENT_RETENTION_DAYS."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EVENT_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(Event.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:1000])
        if not ids:
            return deleted
        Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
