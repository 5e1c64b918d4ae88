"""Asking each provider for the money back. Gateways only ask; state.py writes what they answer.

- Stripe: a Refund against the PaymentIntent, with the SDK; our refund id is the idempotency key
  and rides in the metadata, so the webhooks that follow find it.
- One.com publishes no refund API: the refund stays pending until its signed `refund.succeeded`
  or `refund.failed` callback (docs/providers/onecom.md).
- Web3: we hold no private keys. The customer names a receiving address through a claim link,
  the merchant pays out from its own wallet, and the chain decides (refunds/web3.py).
- Test mode without a provider key (a session paid through the simulator or a signed test
  event): the simulator refunds at once, through the same state handling.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import stripe
from django.conf import settings

from sessions_app.models import PaymentSession
from sessions_app.providers import onecom_provider, stripe_amounts, stripe_provider
from sessions_app.providers.base import PaymentUnavailable
from sessions_app.refunds.models import Refund

logger = logging.getLogger(__name__)

SIMULATED_PREFIX = "re_simulated_"


@dataclass(frozen=True)
class RefundStart:
    """What the provider answered: succeeded, pending (a webhook or the chain decides) or failed."""

    status: str
    reference: str = ""
    failure_reason: str = ""


def simulated(session: PaymentSession) -> bool:
    """A test session whose payment no provider API knows: its refund is simulated."""
    if session.mode != "test":
        return False
    if session.provider == "stripe":
        # The simulator and `send_test_webhook` make PaymentIntent ids of their own (pi_test_…).
        return not settings.STRIPE_TEST_SECRET_KEY or session.provider_reference.startswith("pi_test_")
    if session.provider == "onecom":
        return not onecom_provider.checkout_url("test")
    return session.provider == ""


def refund_start(*, refund: Refund, session: PaymentSession) -> RefundStart:
    if simulated(session):
        return RefundStart("succeeded", SIMULATED_PREFIX + secrets.token_hex(12))
    if session.provider == "stripe":
        return _stripe_refund(refund=refund, session=session)
    # One.com and Web3 answer later: a callback, or a payout confirmed on chain.
    return RefundStart("pending")


def _payment_intent(session: PaymentSession) -> str:
    reference = session.provider_reference
    if reference.startswith("cs_"):
        checkout = stripe_provider.client(session.mode).v1.checkout.sessions.retrieve(reference)
        reference = checkout["payment_intent"] or ""
    return reference


def _stripe_refund(*, refund: Refund, session: PaymentSession) -> RefundStart:
    try:
        intent = _payment_intent(session)
        if not intent.startswith("pi_"):
            return RefundStart("failed", failure_reason="payment_reference_unknown")
        # Stripe's `reason` is kept in the metadata too: every Stripe-compatible server takes metadata.
        created = stripe_provider.client(session.mode).v1.refunds.create(
            params={"payment_intent": intent, "amount": stripe_amounts.to_stripe(refund.amount, refund.currency),
                    "metadata": {"refund_id": str(refund.pk), "session_id": str(session.pk),
                                 "reason": refund.reason}},
            options={"idempotency_key": f"refund:{refund.pk}"})
    except PaymentUnavailable:
        return RefundStart("failed", failure_reason="provider_not_configured")
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError):
        # The refund may exist at Stripe: it stays pending, and Stripe's webhook decides.
        logger.warning("stripe refund outcome unknown", extra={"refund_id": str(refund.pk)}, exc_info=True)
        return RefundStart("pending")
    except stripe.StripeError as exc:
        code = getattr(exc, "code", None) or "provider_error"
        return RefundStart("failed", failure_reason=str(code)[:200])
    status = created["status"]
    if status == "succeeded":
        return RefundStart("succeeded", created["id"])
    if status in ("failed", "canceled"):
        return RefundStart("failed", created["id"], str(created.get("failure_reason") or status))
    return RefundStart("pending", created["id"])
