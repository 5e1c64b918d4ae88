from __future__ import annotations

import secrets
import string

from django.db import models
from django.utils import timezone

from core.modes import Mode

_ALPHABET = string.ascii_letters + string.digits


def new_event_id() -> str:
    # 24 base-62 digits of 144 random bits (the hot paths make one per request: a digit per
    # divmod costs far less than a secrets.choice per character).
    number = int.from_bytes(secrets.token_bytes(18))
    digits = []
    for _ in range(24):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "evt_" + "".join(digits)


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
    # Set once the event has its deliveries (events_app.dispatch); until then it waits in a small index.
    fanned_out = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="event_to_fan_out_idx", condition=models.Q(fanned_out=False)),
            models.Index(fields=["account", "mode", "-created_at"], name="event_account_recent_idx"),
            models.Index(fields=["created_at"], name="event_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


def new_endpoint_id() -> str:
    return "we_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


class WebhookEndpoint(models.Model):
    """A merchant's URL that receives its events of one mode, signed per Standard Webhooks.

    The signing secrets are stored sealed (events_app.secrets); the plain secret is shown once, when
    the endpoint is made or its secret rotated. After a rotation the previous secret keeps signing
    too until `previous_secret_expires_at`.
    """

    id = models.CharField(primary_key=True, max_length=32, default=new_endpoint_id, editable=False)
    account = models.ForeignKey("keys_app.Account", on_delete=models.CASCADE, related_name="webhook_endpoints")
    mode = models.CharField(max_length=4, choices=Mode.choices)
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=500, blank=True, default="")
    # ["*"] for every type.
    event_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    secret_sealed = models.TextField()
    previous_secret_sealed = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Events in a row whose delivery failed for good, and when the first of them failed.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "mode", "enabled"], name="endpoint_account_mode_idx")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    def wants(self, event_type: str) -> bool:
        # A ping is addressed to one endpoint, never fanned out.
        return event_type != "ping" and ("*" in self.event_types or event_type in self.event_types)


class Delivery(models.Model):
    """One event on its way to one endpoint: retried on its schedule until it succeeds or gives up."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # The endpoint was disabled (or deleted) while the delivery waited.
        SKIPPED = "skipped", "Skipped"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Handed to a worker until then: the dispatcher hands it on again after, should that worker die.
    queued_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="delivery_once_per_endpoint")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due_idx",
                         condition=models.Q(status="pending")),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery, as the merchant's server answered it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    started_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # The first 2 KiB of the answer, as text.
    response_body = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    succeeded = models.BooleanField(default=False)
    redelivery = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.pk} of {self.delivery_id}: {self.status_code or self.error}"
