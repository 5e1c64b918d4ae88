"""Recording events. Delivery to merchant endpoints reads the rows written here."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .models import Event


def event_emit(*, account_id: int, mode: str, type: str, data: dict[str, Any], object_id: str = "") -> Event:
    """Record that `type` happened, inside the caller's transaction.

    Call it where the change itself is written, so that a rolled-back change leaves no event behind.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_emit must run inside the transaction of the change it reports")
    return Event.objects.create(account_id=account_id, mode=mode, type=type, data=data, object_id=object_id)
