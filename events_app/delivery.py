"""Delivering events: the deliveries due, one attempt, and endpoint health (fan-out: events_app.fan_out).

A delivery is sent by one worker at a time: the attempt holds a PostgreSQL advisory lock on the
delivery for the length of its request, so a second task for it (a redelivered task, the sweep
handing it on again) waits its turn and then finds it done. A worker killed mid-request loses its
connection and with it the lock; the dispatcher hands the delivery on once `queued_until` passes,
and it is sent again with the same webhook-id. Only a finished request writes its attempt row.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from core import db
from events_app import secrets_box, sender
from events_app.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

logger = logging.getLogger(__name__)

# pg_try_advisory_lock(DELIVERY_LOCK, id): the namespace of delivery locks ("wh").
DELIVERY_LOCK = 0x7768
USER_AGENT = "payments-webhooks/1"


# ---------------------------------------------------------------- what is due


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
    return by_endpoint((endpoint_id, pk) for pk, endpoint_id in due)


def by_endpoint(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    """(endpoint_id, delivery_id) pairs as one list of delivery ids per endpoint, both in their order."""
    groups: dict[str, list[int]] = {}
    for endpoint_id, delivery_id in pairs:
        groups.setdefault(endpoint_id, []).append(delivery_id)
    return list(groups.items())


# ---------------------------------------------------------------- one attempt


def _take(delivery_ids: list[int], held: list[int]) -> list[Delivery]:
    """The deliveries this worker may send now, with their endpoints and events.

    On PostgreSQL each is first locked (one statement for all, advisory locks that `held` lists),
    then read (one statement): a read after the lock sees the outcome of any earlier sender.
    Another worker's deliveries (locked already) are left to it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT k FROM unnest(%s::bigint[]) AS k WHERE pg_try_advisory_lock(%s, (k %% 2147483648)::int)",
                           [delivery_ids, DELIVERY_LOCK])
            held.extend(pk for (pk,) in cursor.fetchall())
        delivery_ids = [pk for pk in delivery_ids if pk in set(held)]
    found = Delivery.objects.select_related("endpoint", "event").in_bulk(delivery_ids)
    return [found[pk] for pk in delivery_ids if pk in found]


def _release(held: list[int]) -> None:
    """Let go of the deliveries sent, in one statement, once their outcome is committed."""
    if held and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, (k %% 2147483648)::int) FROM unnest(%s::bigint[]) AS k",
                           [DELIVERY_LOCK, held])
    held.clear()


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


def deliveries_send(delivery_ids: list[int], *, redelivery: bool = False) -> list[DeliveryAttempt | None]:
    """An attempt of each delivery that is due (or asked for again), one after the other.

    Each is locked (an advisory lock) from before its read until its outcome is committed. The
    locks are taken, the rows read, the successes written and the locks let go in one statement
    each for the whole batch (a failure is written at once, after the successes before it, as it
    may count against its endpoint). A worker that dies mid-batch leaves its successes unwritten:
    they go out again with the same webhook-id, which is what the id is for. Connections to an
    endpoint's address are kept for the batch.
    """
    held: list[int] = []
    pools = sender.Pools()
    successes = _Successes()
    try:
        sent = {d.pk: _send(d, redelivery=redelivery, pools=pools, successes=successes)
                for d in _take(delivery_ids, held)}
        successes.write()
        return [sent.get(pk) for pk in delivery_ids]
    finally:
        pools.close()
        _release(held)


def delivery_send(*, delivery_id: int, redelivery: bool = False) -> DeliveryAttempt | None:
    """One attempt of a delivery that is due (or asked for again); None if there was nothing to send."""
    return deliveries_send([delivery_id], redelivery=redelivery)[0]


def _send(delivery: Delivery, *, redelivery: bool, pools: sender.Pools,
          successes: _Successes) -> DeliveryAttempt | None:
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
        logger.error("the signing secret of endpoint %s cannot be opened (DJANGO_SECRET_KEY changed?)", endpoint.pk)
        return None
    answer = sender.post(endpoint.url, mode=endpoint.mode, body=body.encode(),
                         headers=signed_headers(delivery.event, body, secrets, now=now), pools=pools)
    attempt = DeliveryAttempt(delivery=delivery, started_at=now, status_code=answer.status_code,
                              duration_ms=answer.duration_ms, response_body=answer.body, error=answer.error,
                              succeeded=answer.succeeded, redelivery=redelivery)
    is_ping = delivery.event.type == "ping"
    if answer.succeeded and connection.vendor == "postgresql":
        # The common case: written with the batch's other successes (the attempt, the outcome and
        # the end of any failure run of the endpoint).
        successes.add(attempt, endpoint_id=endpoint.pk, resets_endpoint=not is_ping)
        return attempt
    successes.write()
    return _record(delivery, attempt, is_ping=is_ping)


class _Successes:
    """The successful attempts of a batch, written together in one statement."""

    def __init__(self) -> None:
        self.attempts: list[tuple[DeliveryAttempt, str, bool]] = []

    def add(self, attempt: DeliveryAttempt, *, endpoint_id: str, resets_endpoint: bool) -> None:
        self.attempts.append((attempt, endpoint_id, resets_endpoint))

    def write(self) -> None:
        if not self.attempts:
            return
        rows = [{"delivery_id": a.delivery_id, "started_at": a.started_at.isoformat(), "status_code": a.status_code,
                 "duration_ms": a.duration_ms, "response_body": a.response_body, "redelivery": a.redelivery,
                 "endpoint_id": endpoint_id, "resets": resets} for a, endpoint_id, resets in self.attempts]
        with connection.cursor() as cursor:
            cursor.execute(_successes_sql(), [json.dumps(rows, separators=(",", ":")), timezone.now()])
            ids = dict(cursor.fetchall())
        for attempt, _, _ in self.attempts:
            db.mark_inserted(attempt, ids.get(attempt.delivery_id))
        self.attempts.clear()


@functools.cache
def _successes_sql() -> str:
    attempts, deliveries, endpoints = db.tables(DeliveryAttempt, Delivery, WebhookEndpoint)
    return (
        f"WITH r AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(delivery_id bigint, "  # noqa: S608 - ours
        f"started_at timestamptz, status_code int, duration_ms int, response_body text, redelivery boolean, "
        f"endpoint_id text, resets boolean)), "
        f"attempt AS (INSERT INTO {attempts} (delivery_id, started_at, status_code, duration_ms, response_body, "
        f"error, succeeded, redelivery) SELECT delivery_id, started_at, status_code, duration_ms, response_body, "
        f"'', true, redelivery FROM r RETURNING delivery_id, id), "
        f"done AS (UPDATE {deliveries} AS d SET attempts = d.attempts + 1, last_status_code = r.status_code, "
        f"last_error = '', queued_until = NULL, status = 'succeeded', "
        f"finished_at = CASE WHEN d.status = 'succeeded' THEN d.finished_at ELSE %s END "
        f"FROM r WHERE d.id = r.delivery_id RETURNING 1), "
        f"reset AS (UPDATE {endpoints} SET consecutive_failures = 0, failing_since = NULL, warned_at = NULL "
        f"WHERE id IN (SELECT endpoint_id FROM r WHERE resets) AND consecutive_failures > 0 RETURNING 1) "
        f"SELECT delivery_id, id FROM attempt"
    )


def _record(delivery: Delivery, attempt: DeliveryAttempt, *, is_ping: bool) -> DeliveryAttempt:
    """An attempt whose outcome may touch the endpoint (a failure, or the first success after some)."""
    now = timezone.now()
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
        attempt.delivery = delivery
        attempt.save(force_insert=True)
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = attempt.status_code, attempt.error
        delivery.queued_until = None
        outcome = None
        if attempt.succeeded:
            if delivery.status != Delivery.Status.SUCCEEDED:
                delivery.status, delivery.finished_at, outcome = Delivery.Status.SUCCEEDED, now, True
        elif delivery.status == Delivery.Status.PENDING:
            wait = retry_wait(delivery.attempts) if sender.retryable(attempt.status_code) else None
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
            endpoint_failures_reset(endpoint)
            endpoint.save(update_fields=["consecutive_failures", "failing_since", "warned_at", "updated_at"])
        return
    endpoint.consecutive_failures += 1
    endpoint.failing_since = min(endpoint.failing_since or delivery.created_at, delivery.created_at)
    limit = settings.MERCHANT_WEBHOOK_DISABLE_AFTER_FAILURES
    if endpoint.enabled and endpoint.consecutive_failures >= limit and \
            now - endpoint.failing_since >= timedelta(seconds=settings.MERCHANT_WEBHOOK_DISABLE_AFTER_SECONDS):
        endpoint.enabled, endpoint.disabled_at = False, now
        endpoint.disabled_reason = f"{endpoint.consecutive_failures} events in a row failed"
        deliveries_skip_pending(endpoint=endpoint, reason="endpoint disabled", now=now)
        transaction.on_commit(partial(_email, endpoint.pk, disabled=True))
    elif endpoint.enabled and endpoint.warned_at is None and endpoint.consecutive_failures >= warn_at():
        endpoint.warned_at = now
        transaction.on_commit(partial(_email, endpoint.pk, disabled=False))
    endpoint.save()


def endpoint_failures_reset(endpoint: WebhookEndpoint) -> None:
    """Forget the endpoint's run of failures (in memory: the caller saves)."""
    endpoint.consecutive_failures, endpoint.failing_since, endpoint.warned_at = 0, None, None


def deliveries_skip_pending(*, endpoint: WebhookEndpoint, reason: str, now: datetime) -> int:
    return Delivery.objects.filter(endpoint=endpoint, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SKIPPED, last_error=reason, finished_at=now)


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
