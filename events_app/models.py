from __future__ import annotations

import secrets
import string

from django.db import models
from django.utils import timezone

from core.modes import Mode

_ALPHABET = string.ascii_letters + string.digits


def new_event_id() -> str:
    return "evt_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


class Event(models.Model):
    """Something that happened to a merchant's object, as the merchant's webhooks and GET /events see it.

    Written in the transaction of the change it reports, so an event exists exactly when its change
    committed. `data` is a snapshot of the object at that moment, not a reference to read later.
    """

    id = models.CharField(primary_key=True, max_length=32, default=new_event_id, editable=False)
    # By name, not by import: events sit below keys_app in the layers, yet belong to an account.
    account = models.ForeignKey("keys_app.Account", on_delete=models.CASCADE, related_name="events",
                                db_index=False)
    mode = models.CharField(max_length=4, choices=Mode.choices)
    type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "mode", "-created_at"], name="event_account_recent_idx"),
            models.Index(fields=["created_at"], name="event_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"
