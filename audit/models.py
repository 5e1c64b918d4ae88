"""Append-only, hash-chained audit trail.

Each row stores the SHA-256 of the previous row of its chain, so an edit or a deletion
breaks the chain. Chains are per scope (one per merchant, plus "system"), so two
merchants' webhooks never wait on each other for the chain head.
"""

from __future__ import annotations

from django.db import models


class AuditChain(models.Model):
    """The head of one chain; its row is locked while a new link is appended."""

    scope = models.CharField(max_length=64, primary_key=True)
    seq = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default="0" * 64)
    # The hash the head link points back to: written by the same upsert that advances the
    # head, so one statement can hand both to the new link (RETURNING shows only new values).
    prev_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"{self.scope}@{self.seq}"


class AuditEvent(models.Model):
    scope = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=100)
    # Indexed with created_at (Meta): the dashboard lists a merchant's rows newest first.
    account_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["scope", "seq"]
        constraints = [models.UniqueConstraint(fields=["scope", "seq"], name="audit_unique_scope_seq")]
        # No index on action alone: the dashboard filters actions within a merchant (account_id).
        indexes = [models.Index(fields=["subject_type", "subject_id"]),
                   models.Index(fields=["account_id", "-created_at"], name="audit_account_created_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.subject_type}:{self.subject_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")
