"""Reading events, endpoints and deliveries, always within one merchant and mode."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery

from events_app.models import Delivery, Event, WebhookEndpoint


def events_list(*, account_id: int, mode: str, type: str | None = None, created_gte: datetime | None = None,
                created_lt: datetime | None = None) -> QuerySet[Event]:
    events = Event.objects.filter(account_id=account_id, mode=mode).exclude(type="ping")
    if type:
        events = events.filter(type=type)
    if created_gte:
        events = events.filter(created_at__gte=created_gte)
    if created_lt:
        events = events.filter(created_at__lt=created_lt)
    return events


def event_get(*, account_id: int, mode: str, event_id: str) -> Event | None:
    return Event.objects.filter(account_id=account_id, mode=mode, pk=event_id).first()


def endpoints_list(*, account_id: int, mode: str) -> QuerySet[WebhookEndpoint]:
    return endpoints_with_last_delivery(WebhookEndpoint.objects.filter(account_id=account_id, mode=mode))


def endpoint_get(*, account_id: int, mode: str, endpoint_id: str) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(account_id=account_id, mode=mode, pk=endpoint_id).first()


def _attempted_deliveries_newest_first(endpoint_id: str | OuterRef) -> QuerySet[Delivery]:
    return Delivery.objects.filter(endpoint_id=endpoint_id).exclude(attempts=0).order_by("-created_at", "-id")


def endpoint_last_delivery(*, endpoint_id: str) -> Delivery | None:
    return _attempted_deliveries_newest_first(endpoint_id).first()


def endpoints_with_last_delivery(endpoints: QuerySet[WebhookEndpoint]) -> QuerySet[WebhookEndpoint]:
    """Each endpoint with `last_delivery_id`, the one endpoint_last_delivery finds: a page of endpoints
    then needs one more query for all their deliveries (deliveries_by_id), not one per endpoint."""
    last = _attempted_deliveries_newest_first(OuterRef("pk")).values("pk")[:1]
    return endpoints.annotate(last_delivery_id=Subquery(last))


def endpoints_with_last_delivery_summary(endpoints: QuerySet[WebhookEndpoint]) -> QuerySet[WebhookEndpoint]:
    """Each endpoint with the status, status code and error of its last delivery, in the same query."""
    last = _attempted_deliveries_newest_first(OuterRef("pk"))
    return endpoints.annotate(last_delivery_status=Subquery(last.values("status")[:1]),
                              last_delivery_status_code=Subquery(last.values("last_status_code")[:1]),
                              last_delivery_error=Subquery(last.values("last_error")[:1]))


def deliveries_by_id(ids: Iterable[int | None]) -> dict[int, Delivery]:
    return Delivery.objects.in_bulk([pk for pk in ids if pk is not None])
