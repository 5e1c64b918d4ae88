"""A refund of a paid session, and its state machine. Transitions change fields only."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from core.modes import Mode


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class RefundReason(models.TextChoices):
    REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by the customer"
    DUPLICATE = "duplicate", "Duplicate"
    FRAUDULENT = "fraudulent", "Fraudulent"
    OTHER = "other", "Other"


class SessionRefundStatus(models.TextChoices):
    NONE = "none", "None"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


# What holds money back from a further refund: a refund that may still succeed, or did.
RESERVING_STATUSES = (RefundStatus.PENDING, RefundStatus.SUCCEEDED)


class Refund(ConcurrentTransitionMixin, models.Model):
    """Money given back for a session. Pending until the provider confirms it."""

    class Origin(models.TextChoices):
        API = "api", "API"
        DASHBOARD = "dashboard", "Dashboard"
        # Made at the provider (Stripe's dashboard, One.com's panel) and seen by its webhook.
        PROVIDER = "provider", "Provider"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey("sessions_app.PaymentSession", on_delete=models.PROTECT, related_name="refunds")
    account = models.ForeignKey("keys_app.Account", on_delete=models.PROTECT, related_name="+", db_index=False)
    mode = models.CharField(max_length=4, choices=Mode.choices)
    amount = models.DecimalField(max_digits=18, decimal_places=3)
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=24, choices=RefundReason.choices, default=RefundReason.REQUESTED_BY_CUSTOMER)
    status = FSMField(default=RefundStatus.PENDING, choices=RefundStatus.choices, protected=True)
    provider = models.CharField(max_length=20, blank=True, default="")
    provider_reference = models.CharField(max_length=200, blank=True, default="")
    failure_reason = models.CharField(max_length=200, blank=True, default="")
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.API)
    actor = models.CharField(max_length=200, blank=True, default="")
    # None: the merchant's default (Account.refund_revokes_key) applies to a full refund.
    revoke_key = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # Web3: the customer's receiving address (from the claim link) and the merchant's payout.
    claim_address = models.CharField(max_length=42, blank=True, default="")
    claimed_at = models.DateTimeField(null=True, blank=True)
    payout_tx_hash = models.CharField(max_length=66, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One provider refund is one Refund, however many of its webhooks arrive.
            models.UniqueConstraint(fields=["provider", "provider_reference"], name="refund_unique_provider_reference",
                                    condition=~models.Q(provider_reference="")),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive"),
            # One payout transaction pays one crypto refund.
            models.UniqueConstraint(fields=["payout_tx_hash"], name="refund_unique_payout_tx",
                                    condition=~models.Q(payout_tx_hash="")),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="refund_account_created_idx"),
            models.Index(fields=["session", "status"], name="refund_session_status_idx"),
            # Revenue net of refunds: succeeded refunds by (account, mode, currency, day).
            models.Index(fields=["account", "mode", "currency", "succeeded_at"], name="refund_succeeded_day_idx",
                         condition=models.Q(status="succeeded")),
        ]

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} {self.status}"

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        # Same reason as PaymentSession.refresh_from_db: never flip the shared `protected` flag.
        if fields is None or "status" in fields:
            self.__dict__.pop("status", None)
        models.Model.refresh_from_db(self, using=using, fields=fields, from_queryset=from_queryset)
        self._update_initial_state()

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.SUCCEEDED)
    def mark_succeeded(self, *, provider_reference: str = "") -> None:
        self.provider_reference = provider_reference or self.provider_reference
        self.succeeded_at = self.updated_at = timezone.now()

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.FAILED)
    def mark_failed(self, *, reason: str) -> None:
        self.failure_reason = reason[:200]
        self.failed_at = self.updated_at = timezone.now()

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.CANCELED)
    def mark_canceled(self) -> None:
        self.canceled_at = self.updated_at = timezone.now()
