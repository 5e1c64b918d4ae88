from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from core.modes import Mode

# Payment providers a merchant can enable; sessions_app implements each one.
PROVIDERS = ("stripe", "onecom", "web3")


def default_enabled_providers() -> list[str]:
    return ["stripe"]


TEST_EMAIL_RECIPIENTS_MAX = 20


class Account(models.Model):
    """A merchant. Buyers have no account with us: what they buy is an EntitlementKey of the merchant."""

    name = models.CharField(max_length=200)
    email = models.EmailField()
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="account"
    )
    address = models.TextField(blank=True, default="")
    vat_id = models.CharField(max_length=32, blank=True, default="")
    vat_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    invoice_prefix = models.CharField(max_length=12, default="INV")
    created_at = models.DateTimeField(default=timezone.now)
    # Providers offered when a session does not name its own.
    enabled_providers = models.JSONField(default=default_enabled_providers, blank=True)
    # Web3: a watch-only BIP-32 xpub of m/44'/60'/0'/0 and the accepted asset. No private key, ever.
    web3_xpub = models.CharField(max_length=200, blank=True, default="")
    web3_asset = models.JSONField(null=True, blank=True)
    # The next child index to derive a receiving address from; taken under a row lock.
    web3_next_index = models.PositiveIntegerField(default=0)
    # The mode of the entitlement keys issued to buyers; "test" until the merchant says otherwise.
    issued_key_mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    # Put the plain entitlement key into the receipt email (buyers lose access pages).
    email_key_to_customer = models.BooleanField(default=False)
    # Web origins (scheme://host[:port]) whose pages may call POST /create_session with the
    # merchant's publishable key; the browser is told so through CORS, and no other origin is.
    allowed_origins = models.JSONField(default=list, blank=True)
    # A full refund revokes the buyer's entitlement key unless the refund says otherwise.
    refund_revokes_key = models.BooleanField(default=True)
    # Test mode mails customers only at the merchant's own email and at these addresses (lower case);
    # anything else is printed to the log (keys_app.selectors.test_mail_allowed).
    test_email_recipients = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            # An xpub's addresses receive one account's payments only (stored in canonical form).
            models.UniqueConstraint(fields=["web3_xpub"], condition=~models.Q(web3_xpub=""),
                                    name="account_unique_web3_xpub"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    # DRF treats the authenticated merchant as request.user.
    is_authenticated = True


class ApiKey(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    # Only a SHA-256 of the key is stored; prefix and last 4 are kept to recognise it.
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    last4 = models.CharField(max_length=4)
    label = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last4}"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class PublishableKey(models.Model):
    """A merchant's `pk_test_…` / `pk_live_…` key: one per merchant and mode, public by design.

    It sits in the merchant's web pages, so it is stored as it is (and shown in GET /account);
    what keeps it harmless is what it may do: start a session from an active payment link of its
    merchant, at the link's price, and nothing else. Looked up by its unique index.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="publishable_keys")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "mode"], name="publishable_key_one_per_mode"),
        ]

    def __str__(self) -> str:
        return self.key


class EntitlementKey(models.Model):
    """What a buyer paid for: a key to the merchant's product, verified by the merchant's service.

    It belongs to the merchant that sold it and never authenticates to our API. Rotation and
    upgrade issue a successor (`replaces` points back) and give this key an end of overlap.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    class Verdict(models.TextChoices):
        VALID = "valid", "Valid"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        UNKNOWN = "unknown", "Unknown"
        REFUNDED = "refunded", "Refunded"
        WRONG_MODE = "wrong_mode", "Wrong mode"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entitlement_keys")
    # The payment session that bought it (sessions_app's; keys_app imports no other app).
    session_id = models.UUIDField()
    customer_email = models.EmailField(blank=True, default="")
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    # Only a SHA-256 of the key is stored; prefix and last 4 are kept to recognise it.
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    last4 = models.CharField(max_length=4)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "customer key"
        ordering = ["-created_at", "-id"]
        constraints = [
            # Issued once per session: a successor (rotation, upgrade) always names what it replaces.
            models.UniqueConstraint(fields=["session_id"], condition=models.Q(replaces__isnull=True),
                                    name="entitlement_key_issued_once_per_session"),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="ekey_account_created_idx"),
            models.Index(fields=["session_id"], name="ekey_session_idx"),
            models.Index(fields=["account", "customer_email"], name="ekey_account_email_idx"),
        ]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last4}"

    @property
    def is_current(self) -> bool:
        return self.superseded_by_id is None

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    def verdict(self, *, mode: str, now=None) -> str:
        """What a verification by a merchant key of `mode` answers for this key."""
        if self.mode != mode:
            return self.Verdict.WRONG_MODE
        if self.status == self.Status.REVOKED:
            return self.Verdict.REVOKED
        if self.refunded_at is not None:
            return self.Verdict.REFUNDED
        if self.is_expired(now):
            return self.Verdict.EXPIRED
        return self.Verdict.VALID
