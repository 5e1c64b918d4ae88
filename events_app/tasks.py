"""Celery shells around delivery: each safe to run twice (a delivery is sent by one worker at a time)."""

from __future__ import annotations

from celery import shared_task

from events_app import delivery, dispatch, fan_out, services


@shared_task(acks_late=True, ignore_result=True)
def delivery_send(delivery_id: int, redelivery: bool = False) -> None:
    delivery.delivery_send(delivery_id=delivery_id, redelivery=redelivery)


@shared_task(acks_late=True, ignore_result=True)
def deliveries_send(delivery_ids: list[int]) -> None:
    """A batch from the dispatcher, one endpoint's deliveries in order."""
    delivery.deliveries_send(delivery_ids)


@shared_task(acks_late=True, ignore_result=True)
def events_fan_out(event_id: str) -> None:
    """Without a dispatcher (SQLite, no broker): one event's deliveries, sent at once."""
    _done, handed = fan_out.events_fan_out(event_ids=[event_id])
    for _endpoint_id, ids in handed + delivery.deliveries_take_due():
        delivery.deliveries_send(ids)


@shared_task(acks_late=True, ignore_result=True)
def deliveries_dispatch() -> int:
    handed, _more = dispatch.dispatch_once()
    return handed


@shared_task(acks_late=True, ignore_result=True)
def events_purge() -> int:
    return services.events_purge()
