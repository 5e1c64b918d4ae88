"""Announcements of the lifecycle; fulfilment listens without being imported here."""

from django.dispatch import Signal

# Sent on commit, once, when a session becomes paid. kwargs: session_id.
session_paid = Signal()
# Sent on commit when a provider reports a refund. kwargs: session_id, event_id.
session_refunded = Signal()
