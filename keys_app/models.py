from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class Mode(models.TextChoices):
    TEST = "test", "Test"
    LIVE = "live", "Live"


# Payment providers a merchant can enable; sessions_app implements each one.
PROVIDERS = ("stripe", "onecom", "web3")


def default_enabled_providers() -> list[str]:
    return ["stripe"]


class Account(models.Model):
    """A merchant, or a buyer who holds API keys bought through a session."""

    class Kind(models.TextChoices):
        MERCHANT = "merchant", "Merchant"
        HOLDER = "holder", "Key holder"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MERCHANT)
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

    class Meta:
        indexes = [models.Index(fields=["kind", "email"])]

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
    # The payment session that paid for this key (a buyer's key); one key per session.
    source_session_id = models.UUIDField(null=True, blank=True, unique=True)
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
