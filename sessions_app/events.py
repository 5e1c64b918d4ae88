"""What a provider's verified webhook means, whatever the provider: providers parse into these,
and sessions_app.lifecycle applies them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sessions_app.models import WebhookEvent


class Action(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    # Ends the session: expiry, cancellation, a final asynchronous failure.
    FAILED = "failed"
    # One declined attempt: recorded, and the session stays open for the next one.
    ATTEMPT_FAILED = "attempt_failed"
    REFUNDED = "refunded"
    NONE = "none"


class Outcome(StrEnum):
    """What became of a delivery: the stored outcomes (WebhookEvent.Outcome) and two more."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    LATE = "late"
    REJECTED = "rejected"
    UNMATCHED = "unmatched"
    FAILED = "failed"
    # Not stored again: the provider's event id was seen before.
    DUPLICATE = "duplicate"
    # A reprocess that found the delivery already decided.
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class PaymentEvent:
    """What a provider's verified webhook means for us, whatever the provider."""

    provider: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    action: Action
    session_ref: str | None = None
    provider_reference: str = ""
    amount_minor: int | None = None
    currency: str | None = None
    livemode: bool | None = None
    failure_reason: str = ""
    failure_message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainHint:
    """A verified notification that an address saw activity: only a reason to read the chain."""

    address: str
    tx_hash: str | None = None
    chain_id: int | None = None


@dataclass(frozen=True)
class WebhookResult:
    outcome: Outcome
    detail: str = ""
    event: WebhookEvent | None = None
