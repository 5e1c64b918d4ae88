"""Fulfilment of a paid session: invoice, PDF, buyer's key, access link, emails.

Each step's "did it happen?" is a row guarded by a unique constraint, so a retry, a
redelivered task or a second worker can never do a step twice.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from keys_app.models import Account, EntitlementKey, Mode
from sessions_app.models import PaymentSession, Refund


class InvoiceCounter(models.Model):
    """The last number of a merchant's series (invoices or credit notes) in a mode and a year; its
    row is locked to take the next one. Test mode has series of its own: a test document never
    takes a number from the live books."""

    class Series(models.TextChoices):
        INVOICE = "invoice", "Invoices"
        CREDIT_NOTE = "credit_note", "Credit notes"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    series = models.CharField(max_length=12, choices=Series.choices, default=Series.INVOICE)
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.LIVE)
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "series", "mode", "year"],
                                               name="invoice_counter_unique_series")]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.year}: {self.last_number}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", "Issued"
        REFUNDED = "refunded", "Refunded"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="invoices")
    session = models.OneToOneField(PaymentSession, on_delete=models.PROTECT, related_name="invoice")
    number = models.CharField(max_length=40)
    # Test invoices are numbered in a series of their own (TEST-…) and marked TEST everywhere.
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.LIVE)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ISSUED)
    issue_date = models.DateField()
    issued_at = models.DateTimeField(default=timezone.now)
    refunded_at = models.DateTimeField(null=True, blank=True)
    # The seller and buyer as they were when the invoice was issued: later edits of the
    # merchant's account never change an issued invoice.
    seller_name = models.CharField(max_length=200)
    seller_address = models.TextField(blank=True, default="")
    seller_vat_id = models.CharField(max_length=32, blank=True, default="")
    seller_email = models.EmailField(blank=True, default="")
    buyer_email = models.EmailField(blank=True, default="")
    buyer_name = models.CharField(max_length=200, blank=True, default="")
    buyer_address = models.TextField(blank=True, default="")
    description = models.CharField(max_length=500)
    currency = models.CharField(max_length=3)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    net = models.DecimalField(max_digits=18, decimal_places=3)
    vat = models.DecimalField(max_digits=18, decimal_places=3)
    gross = models.DecimalField(max_digits=18, decimal_places=3)
    payment_provider = models.CharField(max_length=20, blank=True, default="")
    payment_reference = models.CharField(max_length=200, blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    pdf_name = models.CharField(max_length=300, blank=True, default="")
    pdf_sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "number"], name="invoice_unique_account_number"),
            models.UniqueConstraint(fields=["account", "mode", "year", "sequence"],
                                    name="invoice_unique_account_mode_year_seq"),
        ]
        indexes = [
            # The dashboard's invoice list, newest first, and its search by payment reference
            # (the number has its unique index; the email's prefix index is in migration 0008).
            models.Index(fields=["account", "-issued_at"], name="invoice_account_issued_idx"),
            models.Index(fields=["payment_reference"], name="invoice_payment_ref_idx",
                         condition=~models.Q(payment_reference="")),
        ]

    def __str__(self) -> str:
        return self.number


class CreditNote(models.Model):
    """The document of a succeeded refund: it adjusts an issued invoice, which itself never changes.

    Numbered in its own gapless series per merchant, mode and year (CN-2026-00001, TEST-CN-…),
    taken in the transaction that marks the refund succeeded.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="credit_notes")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, related_name="credit_note")
    session = models.ForeignKey(PaymentSession, on_delete=models.PROTECT, related_name="credit_notes")
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes")
    mode = models.CharField(max_length=4, choices=Mode.choices)
    number = models.CharField(max_length=40)
    year = models.PositiveSmallIntegerField()
    sequence = models.PositiveIntegerField()
    issue_date = models.DateField()
    issued_at = models.DateTimeField(default=timezone.now)
    # The invoice it adjusts, as numbered when the refund succeeded ("" if none was issued yet).
    invoice_number = models.CharField(max_length=40, blank=True, default="")
    seller_name = models.CharField(max_length=200)
    seller_address = models.TextField(blank=True, default="")
    seller_vat_id = models.CharField(max_length=32, blank=True, default="")
    buyer_email = models.EmailField(blank=True, default="")
    buyer_name = models.CharField(max_length=200, blank=True, default="")
    reason = models.CharField(max_length=24)
    currency = models.CharField(max_length=3)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    net = models.DecimalField(max_digits=18, decimal_places=3)
    vat = models.DecimalField(max_digits=18, decimal_places=3)
    gross = models.DecimalField(max_digits=18, decimal_places=3)
    pdf_name = models.CharField(max_length=300, blank=True, default="")
    pdf_sha256 = models.CharField(max_length=64, blank=True, default="")
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "number"], name="credit_note_unique_account_number"),
            models.UniqueConstraint(fields=["account", "mode", "year", "sequence"],
                                    name="credit_note_unique_account_mode_year_seq"),
        ]

    def __str__(self) -> str:
        return self.number


class Fulfilment(models.Model):
    """Progress of one paid session through the steps; the safety net re-queues unfinished ones."""

    session = models.OneToOneField(PaymentSession, on_delete=models.CASCADE, primary_key=True,
                                   related_name="fulfilment")
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When the latest run began. A run that began, holds no claim (claims.py) and recorded no
    # error was stopped dead: the relay hands it to another worker.
    started_at = models.DateTimeField(null=True, blank=True)
    invoice_issued_at = models.DateTimeField(null=True, blank=True)
    pdf_stored_at = models.DateTimeField(null=True, blank=True)
    key_issued_at = models.DateTimeField(null=True, blank=True)
    link_created_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    merchant_notified_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["completed_at", "created_at"])]

    def __str__(self) -> str:
        return f"fulfilment of {self.session_id}: {'done' if self.completed_at else 'open'}"


class KeyReveal(models.Model):
    """The buyer's entitlement key, encrypted, until it is shown once (access page or email).

    The database never holds a key in clear: the ciphertext is Fernet with a key derived
    from DJANGO_SECRET_KEY, and it is blanked when the key is revealed. When the buyer
    rotates the key from the access page, the row moves to the successor, already revealed.
    """

    entitlement_key = models.OneToOneField(EntitlementKey, on_delete=models.CASCADE, related_name="reveal")
    session = models.OneToOneField(PaymentSession, on_delete=models.CASCADE, related_name="key_reveal")
    ciphertext = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    revealed_at = models.DateTimeField(null=True, blank=True)
    # Set when the merchant's email_key_to_customer put the key into the receipt.
    emailed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"reveal of key {self.entitlement_key_id} ({'revealed' if self.revealed_at else 'pending'})"


class AccessLink(models.Model):
    """The customer's 7-day link. The token itself is not stored: it is re-signed from this row."""

    jti = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    session = models.OneToOneField(PaymentSession, on_delete=models.CASCADE, related_name="access_link")
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="access_links")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"access link {self.jti}"


class AccessLinkUse(models.Model):
    class Action(models.TextChoices):
        VIEW = "view", "Viewed the page"
        PDF = "pdf", "Downloaded the PDF"
        REVEAL = "reveal", "Revealed the key"
        REVEAL_REFUSED = "reveal_refused", "Asked for an already revealed key"
        ROTATE = "rotate", "Rotated the key"

    link = models.ForeignKey(AccessLink, on_delete=models.CASCADE, related_name="uses")
    action = models.CharField(max_length=16, choices=Action.choices)
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.link_id} {self.action} {self.at:%Y-%m-%d %H:%M}"


class EmailRecord(models.Model):
    """One row per (session, kind) of email: the claim before sending and the proof after."""

    class Kind(models.TextChoices):
        RECEIPT = "receipt", "Receipt to the customer"
        MERCHANT_PAID = "merchant_paid", "Payment received, to the merchant"
        MERCHANT_LATE_PAYMENT = "late_payment", "Paid after the session failed, to the merchant"
        CREDIT_NOTE = "credit_note", "Credit note to the customer"
        REFUND_CLAIM = "refund_claim", "Crypto refund claim link to the customer"

    session = models.ForeignKey(PaymentSession, on_delete=models.CASCADE, related_name="emails")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # What the email is about when a session may have several of its kind (a late payment's id).
    reference = models.CharField(max_length=64, blank=True, default="")
    to = models.EmailField()
    subject = models.CharField(max_length=300, blank=True, default="")
    message_id = models.CharField(max_length=300, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "kind", "reference"],
                                               name="email_unique_session_kind_reference")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.session_id} ({'sent' if self.sent_at else 'pending'})"
