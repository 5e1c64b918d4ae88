"""Announcements of the lifecycle; fulfilment listens without being imported here."""

from django.dispatch import Signal

# Sent on commit, once, when a session is to be delivered: it became paid, or the merchant chose
# to fulfil a late-paid one anyway. kwargs: session_id.
session_paid = Signal()
# Sent on commit when a verified payment arrives for a session that had already failed.
# kwargs: session_id, late_payment_id.
session_late_payment = Signal()

# On PostgreSQL a session to deliver is also announced to other processes, in the transaction
# that decides it: NOTIFY on this channel, with {"session_id": ..., "request_id": ...} as payload.
# PostgreSQL delivers it to every listener if and only if the transaction commits.
SESSION_PAID_CHANNEL = "session_paid"

# Sent inside the transaction that marks a refund succeeded, so that what it issues (the credit
# note and its number) commits or rolls back with the refund. kwargs: refund.
refund_succeeded = Signal()
# Sent on commit when a crypto refund waits for the customer's receiving address. kwargs: refund_id.
refund_claim_requested = Signal()
# Asked (send, not on commit) by the checkout page and the dashboard for a paid test session:
# receivers answer a dict of what to show, e.g. the access link a test-mode receipt would have
# carried to an address the merchant did not list. kwargs: session.
test_session_delivery_shown = Signal()
