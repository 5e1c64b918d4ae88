"""Delivering events: fan-out to endpoints, the deliveries due, one attempt, and endpoint health.

A delivery is sent by one worker at a time: the attempt holds a PostgreSQL advisory lock on the
delivery for the length of its request, so a second task for it (a redelivered task, the sweep
handing it on again) waits its turn and then finds it done. A worker killed mid-request loses its
connection and with it the lock; the dispatcher hands the delivery on once `queued_until` passes,
and it is sent again with the same webhook-id. Only a finished request writes its attempt row.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from events_app import secrets_box, sender
from events_app.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

logger = logging.getLogger(__name__)

# pg_try_advisory_lock(DELIVERY_LOCK, id): the namespace of delivery locks ("wh").
DELIVERY_LOCK = 0x7768
USER_AGENT = "payments-webhooks/1"


# ---------------------------------------------------------------- fan-out and what is due


def events_fan_out(*, event_ids: list[str] | None = None, limit: int = 500) -> int:
    """Give new events their deliveries (one per enabled endpoint that wants the type). Returns the events done."""
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
                .only("pk", "account_id", "mode", "event_types", "created_at"):
            endpoints.setdefault((endpoint.account_id, endpoint.mode), []).append(endpoint)
        deliveries = [Delivery(endpoint_id=endpoint.pk, event_id=event.pk, next_attempt_at=now)
                      for event in events for endpoint in endpoints.get((event.account_id, event.mode), ())
                      if endpoint.wants(event.type) and endpoint.created_at <= event.created_at]
        Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(fanned_out=True)
    return len(events)


def deliveries_take_due(*, limit: int = 200, now: datetime | None = None) -> list[tuple[str, list[int]]]:
    """Deliveries due and not with a worker, marked as handed on; grouped by endpoint, in order."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(Delivery.objects.select_for_update(skip_locked=True)
                   .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
                   .filter(Q(queued_until__isnull=True) | Q(queued_until__lte=now))
                   .order_by("next_attempt_at").values_list("pk", "endpoint_id")[:limit])
        if not due:
            return []
        Delivery.objects.filter(pk__in=[pk for pk, _ in due]).update(
            queued_until=now + timedelta(seconds=settings.MERCHANT_WEBHOOK_REQUEUE_SECONDS))
    groups: dict[str, list[int]] = {}
    for pk, endpoint_id in due:
        groups.setdefault(endpoint_id, []).append(pk)
    return list(groups.items())


# ---------------------------------------------------------------- one attempt


@contextmanager
def _sending(delivery_id: int) -> Iterator[bool]:
    """Whether this worker may send the delivery now (the advisory lock, on PostgreSQL)."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [DELIVERY_LOCK, delivery_id % 2**31])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [DELIVERY_LOCK, delivery_id % 2**31])


def event_body(event: Event) -> str:
    return json.dumps({"id": event.pk, "type": event.type, "created": event.created_at.isoformat(),
                       "livemode": event.mode == "live", "data": event.data}, separators=(",", ":"))


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    """The current secret, and the previous one during its overlap."""
    found = [secrets_box.unseal(endpoint.secret_sealed)]
    if endpoint.previous_secret_sealed and endpoint.previous_secret_expires_at \
            and endpoint.previous_secret_expires_at > now:
        found.append(secrets_box.unseal(endpoint.previous_secret_sealed))
    return found


def signed_headers(event: Event, body: str, secrets: list[str], *, now: datetime) -> dict[str, str]:
    # The webhook-id is the event's id on every attempt, so the merchant can drop repeats.
    signatures = " ".join(Webhook(secret).sign(event.pk, now, body) for secret in secrets)
    return {"webhook-id": event.pk, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json", "user-agent": USER_AGENT}


def retry_wait(attempts: int) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones (+-10% jitter), or None: give up."""
    schedule = settings.MERCHANT_WEBHOOK_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    return schedule[attempts - 1] * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not a secret


def delivery_send(*, delivery_id: int, redelivery: bool = False) -> DeliveryAttempt | None:
    """One attempt of a delivery that is due (or asked for again); None if there was nothing to send."""
    with _sending(delivery_id) as held:
        if not held:
            return None  # another worker is sending it; it finishes the delivery
        delivery = Delivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
        if delivery is None:
            return None
        now = timezone.now()
        endpoint = delivery.endpoint
        if not redelivery and (delivery.status != Delivery.Status.PENDING
                               or (delivery.next_attempt_at and delivery.next_attempt_at > now)):
            return None
        if not endpoint.enabled and delivery.event.type != "ping":
            Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(
                status=Delivery.Status.SKIPPED, last_error="endpoint disabled", finished_at=now)
            return None
        body = event_body(delivery.event)
        try:
            secrets = signing_secrets(endpoint, now=now)
        except secrets_box.CannotOpen:
            logger.error("the signing secret of endpoint %s cannot be opened (DJANGO_SECRET_KEY changed?)",
                         endpoint.pk)
            return None
        answer = sender.post(endpoint.url, mode=endpoint.mode, body=body.encode(),
                             headers=signed_headers(delivery.event, body, secrets, now=now))
        return _record(delivery, answer, started_at=now, redelivery=redelivery)


def _record(delivery: Delivery, answer: sender.Answer, *, started_at: datetime, redelivery: bool) -> DeliveryAttempt:
    now = timezone.now()
    is_ping = delivery.event.type == "ping"
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, started_at=started_at, status_code=answer.status_code, duration_ms=answer.duration_ms,
            response_body=answer.body, error=answer.error, succeeded=answer.succeeded, redelivery=redelivery)
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = answer.status_code, answer.error
        delivery.queued_until = None
        outcome = None
        if answer.succeeded:
            if delivery.status != Delivery.Status.SUCCEEDED:
                delivery.status, delivery.finished_at, outcome = Delivery.Status.SUCCEEDED, now, True
        elif delivery.status == Delivery.Status.PENDING:
            wait = retry_wait(delivery.attempts) if answer.retryable else None
            if wait is not None:
                delivery.next_attempt_at = now + timedelta(seconds=wait)
            else:
                delivery.status, delivery.finished_at, outcome = Delivery.Status.FAILED, now, False
        delivery.save()
        if outcome is not None and not is_ping:
            _endpoint_health(delivery, succeeded=outcome, now=now)
    return attempt


# ---------------------------------------------------------------- endpoint health


def warn_at() -> int:
    """The failure count at which the merchant is warned: half-way to disabling (the 5th of 10)."""
    return max(1, (settings.MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES + 1) // 2)


def _endpoint_health(delivery: Delivery, *, succeeded: bool, now: datetime) -> None:
    """An event finished for this endpoint: reset its failure run, or lengthen it (warn, disable)."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    if succeeded:
        if endpoint.consecutive_failures:
            endpoint.consecutive_failures, endpoint.failing_since, endpoint.warned_at = 0, None, None
            endpoint.save(update_fields=["consecutive_failures", "failing_since", "warned_at", "updated_at"])
        return
    endpoint.consecutive_failures += 1
    endpoint.failing_since = min(endpoint.failing_since or delivery.created_at, delivery.created_at)
    limit = settings.MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES
    if endpoint.enabled and endpoint.consecutive_failures >= limit and \
            now - endpoint.failing_since >= timedelta(seconds=settings.MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS):
        endpoint.enabled, endpoint.disabled_at = False, now
        endpoint.disabled_reason = f"{endpoint.consecutive_failures} events in a row failed"
        Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.SKIPPED, last_error="endpoint disabled", finished_at=now)
        transaction.on_commit(partial(_email, endpoint.pk, disabled=True))
    elif endpoint.enabled and endpoint.warned_at is None and endpoint.consecutive_failures >= warn_at():
        endpoint.warned_at = now
        transaction.on_commit(partial(_email, endpoint.pk, disabled=False))
    endpoint.save()


def _email(endpoint_id: str, *, disabled: bool) -> None:
    endpoint = WebhookEndpoint.objects.select_related("account").filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.account.email:
        return
    count = endpoint.consecutive_failures
    if disabled:
        subject = f"Webhook endpoint disabled: {endpoint.url}"
        text = (f"We disabled your {endpoint.mode}-mode webhook endpoint {endpoint.url} ({endpoint.pk}) after "
                f"{count} events in a row could not be delivered. Pending deliveries were skipped; the events "
                f"stay available from GET /events. Re-enable the endpoint once it answers again.")
    else:
        limit = settings.MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES
        subject = f"Webhook endpoint failing: {endpoint.url}"
        text = (f"{count} events in a row could not be delivered to your {endpoint.mode}-mode webhook endpoint "
                f"{endpoint.url} ({endpoint.pk}). It will be disabled after {limit} failed events in a row. "
                f"Its delivery log in the dashboard shows each attempt's answer.")
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [endpoint.account.email])
    except Exception:
        logger.exception("could not email the merchant about endpoint %s", endpoint.pk)
