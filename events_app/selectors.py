"""Reading events, endpoints and deliveries, always within one merchant and mode."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

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
    return WebhookEndpoint.objects.filter(account_id=account_id, mode=mode)


def endpoint_get(*, account_id: int, mode: str, endpoint_id: str) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(account_id=account_id, mode=mode, pk=endpoint_id).first()


def endpoint_last_delivery(*, endpoint_id: str) -> Delivery | None:
    return Delivery.objects.filter(endpoint_id=endpoint_id).exclude(attempts=0).order_by("-created_at", "-id").first()
