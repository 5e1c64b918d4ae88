from __future__ import annotations

import secrets
import string
import uuid

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from keys_app.models import Account, Mode


class Status(models.TextChoices):
    CREATED = "created", "Created"
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"


OPEN_STATUSES = (Status.CREATED, Status.PENDING)
TERMINAL_STATUSES = (Status.PAID, Status.FAILED)


class PaymentSession(ConcurrentTransitionMixin, models.Model):
    """One payment a merchant asked for. Transitions change fields only; services do the I/O."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the (account, created_at) index below, which every per-merchant query uses.
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="sessions", db_index=False)
    amount = models.DecimalField(max_digits=18, decimal_places=3)
    currency = models.CharField(max_length=3, default="EUR")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    providers = models.JSONField(default=list, blank=True)
    customer_email = models.EmailField(blank=True, default="")
    customer_name = models.CharField(max_length=200, blank=True, default="")
    customer_address = models.TextField(blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    # What the buyer's entitlement key will carry: {"expires_in_days": int | None, "metadata": {...}}.
    entitlement = models.JSONField(default=dict, blank=True)
    client_reference_id = models.CharField(max_length=200, blank=True, default="")
    success_url = models.URLField(max_length=2000, blank=True, default="")
    cancel_url = models.URLField(max_length=2000, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = FSMField(default=Status.CREATED, choices=Status.choices, protected=True)
    failure_reason = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=20, blank=True, default="")
    provider_reference = models.CharField(max_length=200, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    # Declined attempts: the customer may try again on the same checkout, so these never end it.
    payment_attempts_failed = models.PositiveIntegerField(default=0)
    last_payment_error_code = models.CharField(max_length=100, blank=True, default="")
    last_payment_error_message = models.CharField(max_length=500, blank=True, default="")
    last_payment_error_at = models.DateTimeField(null=True, blank=True)
    # Money that arrived after the session had failed (see LatePayment), and the merchant's
    # decision to deliver all the same.
    late_payment_at = models.DateTimeField(null=True, blank=True)
    fulfil_anyway_at = models.DateTimeField(null=True, blank=True)
    fulfil_anyway_by = models.CharField(max_length=200, blank=True, default="")
    # The payment link the session was started from (GET /pay/{slug}, or a publishable key).
    payment_link = models.ForeignKey("sessions_app.PaymentLink", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="sessions", db_index=False)
    # Derived from the session's succeeded refunds (sessions_app.refunds.state); status stays paid.
    amount_refunded = models.DecimalField(max_digits=18, decimal_places=3, default=0)
    refund_status = models.CharField(max_length=20, default="none", choices=[
        ("none", "None"), ("partially_refunded", "Partially refunded"), ("refunded", "Refunded")])

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Per-link counts; sessions made with a secret key (no link) stay out of it.
            models.Index(fields=["payment_link", "status"], name="session_payment_link_idx",
                         condition=models.Q(payment_link__isnull=False)),
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["account", "status", "-created_at"]),
            # For the expiry sweep, which looks only at open sessions: a paid or failed one
            # leaves the index (and its transition writes one index entry fewer). status is in
            # the condition, not a column: a transition's "WHERE id = … AND status = …" must
            # never look like a job for this index instead of the primary key.
            models.Index(fields=["expires_at"], name="session_open_expiry_idx",
                         condition=models.Q(status__in=["created", "pending"])),
            # Recent sessions to deliver (paid, or fulfilled anyway), for the fulfilment relay's
            # look back when it starts: one decided while no worker listened is found here.
            models.Index(fields=["paid_at"], name="session_deliverable_idx",
                         condition=models.Q(status="paid") | models.Q(fulfil_anyway_at__isnull=False)),
            # The dashboard's "paid after expiry" filter.
            models.Index(fields=["late_payment_at"], name="session_late_payment_idx",
                         condition=models.Q(late_payment_at__isnull=False)),
            # Dashboard search by exact reference (the email's trigram index and the BRIN index
            # on created_at are PostgreSQL-only, made in migration 0011).
            models.Index(fields=["account", "client_reference_id"], name="session_client_ref_idx",
                         condition=~models.Q(client_reference_id="")),
            # A refund made at the provider names the payment, not our session; also searched by.
            models.Index(fields=["provider_reference"], name="session_provider_ref_idx",
                         condition=~models.Q(provider_reference="")),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} {self.status}"

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        # django-fsm-2 reloads a protected field by switching the field's `protected` flag off and
        # on again, on the field shared by every instance: two threads refreshing at once (a
        # threaded server, a worker pool) can find it switched back mid-reload and fail with
        # "Direct status modification is not allowed". Forgetting this instance's value first
        # lets the reload set it without touching the shared flag.
        if fields is None or "status" in fields:
            self.__dict__.pop("status", None)
        models.Model.refresh_from_db(self, using=using, fields=fields, from_queryset=from_queryset)
        self._update_initial_state()

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_deliverable(self) -> bool:
        """Paid, or failed with money that arrived late and a merchant who chose to deliver."""
        return self.status == Status.PAID or (self.status == Status.FAILED and self.fulfil_anyway_at is not None)

    def is_past_expiry(self, now=None) -> bool:
        return self.expires_at <= (now or timezone.now())

    @transition(field=status, source=Status.CREATED, target=Status.PENDING)
    def mark_pending(self, *, provider: str, provider_reference: str = "") -> None:
        self.provider = provider
        self.provider_reference = provider_reference or self.provider_reference

    @transition(field=status, source=[Status.CREATED, Status.PENDING], target=Status.PAID)
    def mark_paid(self, *, provider: str, provider_reference: str, paid_at=None) -> None:
        self.provider = provider
        self.provider_reference = provider_reference
        self.paid_at = paid_at or timezone.now()

    @transition(field=status, source=[Status.CREATED, Status.PENDING], target=Status.FAILED)
    def mark_failed(self, *, reason: str, provider: str = "", provider_reference: str = "") -> None:
        self.failure_reason = reason[:200]
        self.failed_at = timezone.now()
        if provider:
            self.provider = provider
        if provider_reference:
            self.provider_reference = provider_reference


_LINK_ALPHABET = string.ascii_letters + string.digits


def new_payment_link_id() -> str:
    return "plink_" + "".join(secrets.choice(_LINK_ALPHABET) for _ in range(24))


def new_payment_link_slug() -> str:
    return "".join(secrets.choice(_LINK_ALPHABET) for _ in range(16))


class PaymentLink(models.Model):
    """A price a merchant publishes: each visit of /pay/{slug} (or a publishable-key call) starts
    a session at this price. The price never changes; a new price is a new link."""

    id = models.CharField(primary_key=True, max_length=32, default=new_payment_link_id, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="payment_links", db_index=False)
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    slug = models.CharField(max_length=32, unique=True, default=new_payment_link_slug, editable=False)
    active = models.BooleanField(default=True)
    # The price; null for a custom-amount link, whose buyer chooses within [min, max].
    amount = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    currency = models.CharField(max_length=3, default="EUR")
    custom_amount_min = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    custom_amount_max = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    custom_amount_preset = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    description = models.CharField(max_length=500, blank=True, default="")
    providers = models.JSONField(default=list, blank=True)
    entitlement = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    success_url = models.URLField(max_length=2000, blank=True, default="")
    cancel_url = models.URLField(max_length=2000, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "mode", "-created_at"], name="payment_link_account_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(amount__isnull=False, custom_amount_min__isnull=True)
                           | models.Q(amount__isnull=True, custom_amount_min__isnull=False,
                                      custom_amount_max__isnull=False)),
                name="payment_link_fixed_or_custom"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.description or self.slug}"

    @property
    def is_custom_amount(self) -> bool:
        return self.amount is None


class LatePayment(models.Model):
    """A verified payment for a session that had already failed: the money moved, so it is
    kept, the merchant is told, and the merchant decides (deliver anyway, or refund)."""

    session = models.ForeignKey(PaymentSession, on_delete=models.CASCADE, related_name="late_payments")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    provider = models.CharField(max_length=20)
    provider_reference = models.CharField(max_length=200, blank=True, default="")
    event_id = models.CharField(max_length=255)
    # None when the provider's event did not say (the session's amount is then what was asked).
    amount = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            # One payment is one late payment, however many of its events arrive.
            models.UniqueConstraint(fields=["session", "provider", "provider_reference"],
                                    name="late_payment_unique_reference"),
        ]

    def __str__(self) -> str:
        return f"late {self.amount} {self.currency} for {self.session_id}"


class WebhookEvent(models.Model):
    """Every verified delivery from a provider, stored once per (provider, event id)."""

    class Outcome(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        LATE = "late", "Paid after the session ended"
        REJECTED = "rejected", "Rejected"
        UNMATCHED = "unmatched", "No matching session"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RECEIVED)
    error = models.CharField(max_length=500, blank=True, default="")
    session = models.ForeignKey(PaymentSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events")
    # Indexed with received_at (Meta): the dashboard lists a merchant's deliveries newest first.
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                db_index=False)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_unique_provider_event")]
        indexes = [models.Index(fields=["account", "-received_at"], name="webhook_account_received_idx")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id} {self.event_type} {self.outcome}"


class IdempotencyRecord(models.Model):
    """The first response to an Idempotency-Key, replayed for 24 h (scoped per merchant)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="idempotency_unique_account_key")]

    def __str__(self) -> str:
        return f"{self.account_id}:{self.key}"


class Web3Charge(models.Model):
    """Where a session's crypto payment goes: one address derived from the merchant's xpub."""

    session = models.OneToOneField(PaymentSession, on_delete=models.CASCADE, related_name="web3_charge")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    chain_id = models.PositiveBigIntegerField()
    address_index = models.PositiveIntegerField()
    address = models.CharField(max_length=42)
    # The accepted asset as configured when the session was made (type, symbol, decimals, address).
    asset = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "address_index"], name="web3_unique_address_index"),
            # One receiving address belongs to one charge on its chain, whatever the account: an account
            # configured with another's xpub could otherwise claim that account's payments.
            models.UniqueConstraint(Lower("address"), "chain_id", name="web3_unique_chain_address"),
        ]
        indexes = [models.Index(fields=["address"])]

    def __str__(self) -> str:
        return f"{self.address} for {self.session_id}"


class Web3Quote(models.Model):
    """A price locked for a while: `amount` smallest units of the asset pay the session."""

    charge = models.ForeignKey(Web3Charge, on_delete=models.CASCADE, related_name="quotes")
    amount = models.DecimalField(max_digits=78, decimal_places=0)
    rate = models.DecimalField(max_digits=30, decimal_places=10)
    rate_source = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.amount} until {self.expires_at}"


class Web3Transfer(models.Model):
    """A transfer to a session's address seen on chain. One transfer pays one session only."""

    class Status(models.TextChoices):
        CONFIRMING = "confirming", "Waiting for confirmations"
        CONFIRMED = "confirmed", "Confirmed"
        DROPPED = "dropped", "Dropped from the chain"

    charge = models.ForeignKey(Web3Charge, on_delete=models.CASCADE, related_name="transfers")
    chain_id = models.PositiveBigIntegerField()
    tx_hash = models.CharField(max_length=66)
    # The log's index for a token Transfer; -1 for a native transfer (the transaction itself).
    log_index = models.IntegerField()
    sender = models.CharField(max_length=42, blank=True, default="")
    token = models.CharField(max_length=42, blank=True, default="")
    amount = models.DecimalField(max_digits=78, decimal_places=0)
    block_number = models.PositiveBigIntegerField()
    block_hash = models.CharField(max_length=66)
    block_time = models.DateTimeField()
    confirmations = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CONFIRMING)
    # What the payment meant: underpaid / paid / overpaid / late / outside_quote.
    note = models.CharField(max_length=20, blank=True, default="")
    first_seen_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "tx_hash", "log_index"], name="web3_transfer_pays_once"),
        ]

    def __str__(self) -> str:
        return f"{self.tx_hash}:{self.log_index} {self.amount} {self.status}"


class Web3ScanCursor(models.Model):
    """How far the poller has looked on a chain."""

    chain_id = models.PositiveBigIntegerField(unique=True)
    block_number = models.PositiveBigIntegerField()
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.chain_id}@{self.block_number}"


class DailySummary(models.Model):
    """One merchant's sessions of one UTC day, currency and mode, so the dashboard never scans
    the history. Kept by `summaries.summary_refresh` (a job, outside the payment's transaction):

    - count, gross, refunded, net: payments by the day they were paid, up to
      `SummaryWatermark.paid_until`;
    - created, pending, paid, failed: sessions by the day they were made and their status now,
      up to `SummaryWatermark.created_until` (by then every session has ended).

    Readers add what is newer than the watermarks from the sessions themselves.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    currency = models.CharField(max_length=3)
    mode = models.CharField(max_length=4, choices=Mode.choices)
    count = models.PositiveIntegerField(default=0)
    gross = models.DecimalField(max_digits=24, decimal_places=3, default=0)
    refunded = models.DecimalField(max_digits=24, decimal_places=3, default=0)
    net = models.DecimalField(max_digits=24, decimal_places=3, default=0)
    sessions_created = models.PositiveIntegerField(default=0)
    sessions_pending = models.PositiveIntegerField(default=0)
    sessions_paid = models.PositiveIntegerField(default=0)
    sessions_failed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "mode", "day", "currency"],
                                               name="daily_summary_unique_day")]
        # The refresh looks for days still showing open sessions: few, whatever the history.
        indexes = [models.Index(fields=["day"], name="daily_summary_open_idx",
                                condition=models.Q(sessions_created__gt=0) | models.Q(sessions_pending__gt=0))]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.currency} {self.mode}: {self.count} paid, {self.gross}"


class DailyFailureReason(models.Model):
    """Failed sessions per merchant, UTC day (of the failure), mode and reason; kept with DailySummary."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    mode = models.CharField(max_length=4, choices=Mode.choices)
    reason = models.CharField(max_length=200)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "mode", "day", "reason"],
                                               name="daily_failure_unique_reason")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day} {self.mode} {self.reason}: {self.count}"


class SummaryWatermark(models.Model):
    """How far the daily summary goes: one row (pk 1), written by the refresh job only."""

    paid_until = models.DateTimeField()
    created_until = models.DateTimeField()
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"paid until {self.paid_until}, created until {self.created_until}"


# The refund model lives with its services; Django finds it through this module.
from sessions_app.refunds.models import Refund  # noqa: E402, F401
