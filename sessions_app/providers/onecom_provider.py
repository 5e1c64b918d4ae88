"""One.com: a hosted-payment redirect out, Standard Webhooks callbacks in.

One.com publishes no payments API, so this adapter defines the contract (docs/providers/onecom.md):
the customer is sent to ONECOM_<MODE>_CHECKOUT_URL with the session reference, amount, currency and
return URL; the result comes back as a Standard-Webhooks-signed callback to /webhooks/onecom.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core import currencies
from sessions_app.events import Action, PaymentEvent
from sessions_app.providers.base import (
    PaymentStart,
    PaymentUnavailable,
    Provider,
    WebhookRejected,
    WebhookUnavailable,
    json_object,
)
from sessions_app.services import session_set_provider_reference

NAME = "onecom"
MAX_BODY_BYTES = 64 * 1024
MAX_AMOUNT_CHARS = 40
# Amounts are numeric(18, 3): 15 digits before the point. No real payment comes near.
MAX_AMOUNT_MINOR = 10**15 - 1
EVENT_TYPES = ("payment.processing", "payment.succeeded", "payment.failed", "payment.expired", "refund.succeeded",
               "refund.failed")
_ACTIONS = {
    "payment.processing": Action.PENDING,
    "payment.succeeded": Action.PAID,
    # One declined attempt, unless the callback says the payment cannot be retried (below).
    "payment.failed": Action.ATTEMPT_FAILED,
    "payment.expired": Action.FAILED,
    # A refund the merchant started here (data.refund_id) or in One.com's panel.
    "refund.succeeded": Action.REFUNDED,
    "refund.failed": Action.REFUNDED,
}


def webhook_secret(mode: str) -> str:
    return settings.ONECOM_LIVE_WEBHOOK_SECRET if mode == "live" else settings.ONECOM_TEST_WEBHOOK_SECRET


def checkout_url(mode: str) -> str:
    return settings.ONECOM_LIVE_CHECKOUT_URL if mode == "live" else settings.ONECOM_TEST_CHECKOUT_URL


def _webhook(secret: str) -> Webhook:
    if not secret:
        raise WebhookUnavailable("webhook_not_configured", "ONECOM_TEST_WEBHOOK_SECRET is not configured.")
    return Webhook(secret)


def _secret_bytes(mode: str) -> bytes:
    return base64.b64decode(webhook_secret(mode).removeprefix("whsec_") + "==")


def redirect_signature(query: Mapping[str, str], *, mode: str = "test") -> str:
    """HMAC of the redirect parameters, so the hosted page can tell that we sent the amount."""
    message = "&".join(f"{k}={query[k]}" for k in sorted(query))
    digest = hmac.new(_secret_bytes(mode), message.encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _verify_with(body: bytes, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    try:
        _webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        raise WebhookRejected("signature_invalid", f"Standard Webhooks verification failed: {exc}.") from None
    except (ValueError, UnicodeError):
        # A malformed signature header (bad base64, non-ASCII) or a body that is not UTF-8.
        raise WebhookRejected("signature_malformed", "The webhook signature or body is malformed.") from None
    # Our parser, not the library's: bounded depth, finite numbers only.
    payload = json_object(body)
    return payload


def verify_with_mode(body: bytes, headers: Mapping[str, str]) -> tuple[dict[str, Any], bool | None]:
    """Verify a callback and tell its mode: the mode whose secret verifies it (None if both would).

    One.com's callbacks carry no mode and come to one URL, so the secret decides: a callback
    signed with the test secret can only ever move a test session. With one secret for both
    modes (ONECOM_WEBHOOK_SECRET alone) the mode cannot be told and the session's own stands.
    """
    test, live = settings.ONECOM_TEST_WEBHOOK_SECRET, settings.ONECOM_LIVE_WEBHOOK_SECRET
    if not (test or live):
        raise WebhookUnavailable("webhook_not_configured", "ONECOM_TEST_WEBHOOK_SECRET is not configured.")
    first_error: WebhookRejected | None = None
    for candidate, livemode in ((test, False), (live, True)):
        if not candidate:
            continue
        try:
            payload = _verify_with(body, headers, candidate)
        except WebhookUnavailable:
            raise
        except WebhookRejected as exc:
            first_error = first_error or exc
            continue
        return payload, (None if test == live else livemode)
    assert first_error is not None  # noqa: S101 - one secret at least was tried
    raise first_error


def parse(payload: dict[str, Any], *, event_id: str, livemode: bool | None = None) -> PaymentEvent:
    event_type = payload.get("type")
    data = payload.get("data")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise WebhookRejected("event_invalid", 'An event is {"type": "...", "data": {...}}.')
    action = _ACTIONS.get(event_type, Action.NONE)
    amount_minor, currency = None, None
    if action in (Action.PAID, Action.REFUNDED):
        currency = data.get("currency")
        if not isinstance(currency, str) or not currencies.is_supported(currency.upper()):
            raise WebhookRejected("currency_invalid", "data.currency must be a supported ISO 4217 code.")
        raw = data.get("amount")
        try:
            # A decimal string, as in the contract; never a float.
            amount = Decimal(raw) if isinstance(raw, str) and len(raw) <= MAX_AMOUNT_CHARS else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount <= 0:
            raise WebhookRejected("amount_invalid", 'data.amount must be a positive decimal string such as "99.99".')
        try:
            # "1e999999" parses, then overflows the context (decimal.Overflow is no InvalidOperation).
            scaled = amount.scaleb(currencies.exponent(currency.upper()))
            amount_minor = int(scaled.to_integral_exact())
        except (InvalidOperation, ArithmeticError):
            raise WebhookRejected("amount_invalid", "data.amount is out of range or has more decimals than its "
                                                    "currency.") from None
        if Decimal(amount_minor) != scaled or amount_minor > MAX_AMOUNT_MINOR:
            raise WebhookRejected("amount_invalid", "data.amount is out of range or has more decimals than its "
                                                    "currency.")
    reason, message = "", ""
    if event_type == "payment.expired":
        reason = "expired"
    elif event_type == "payment.failed":
        reason = str(data.get("reason") or "payment_failed")[:200]
        message = str(data.get("message") or "")[:500]
        if data.get("retryable") is False:
            action = Action.FAILED
    extra: dict[str, Any] = {}
    if action == Action.REFUNDED:
        extra["refunds"] = [{"id": str(data.get("refund_reference") or "")[:200], "amount_minor": amount_minor,
                             "status": "succeeded" if event_type == "refund.succeeded" else "failed",
                             "refund_id": data.get("refund_id"), "reason": "",
                             "failure_reason": str(data.get("reason") or "")[:200]}]
    session_ref = data.get("session_id")
    return PaymentEvent(
        provider=NAME, event_id=event_id, event_type=event_type, payload=payload, action=action,
        session_ref=str(session_ref) if session_ref else None,
        provider_reference=str(data.get("payment_id") or "")[:200], amount_minor=amount_minor,
        currency=currency, failure_reason=reason, failure_message=message, livemode=livemode, extra=extra,
    )


def test_event(*, session_id: str, event_type: str, amount: Decimal, currency: str,
               payment_id: str | None = None) -> dict[str, Any]:
    """A callback body as One.com sends it, for the test-mode simulator and the tests."""
    exp = currencies.exponent(currency)
    data: dict[str, Any] = {"session_id": session_id, "payment_id": payment_id or "pay_" + secrets.token_hex(10),
                            "amount": f"{amount:.{exp}f}", "currency": currency}
    if event_type == "payment.failed":
        data["reason"] = "card_declined"
    return {"type": event_type, "data": data}


def test_refund_event(*, session_id: str, refund_id: str, succeeded: bool, amount: Decimal, currency: str,
                      refund_reference: str | None = None) -> dict[str, Any]:
    """A refund callback as One.com sends it once the money went back (or could not)."""
    exp = currencies.exponent(currency)
    data: dict[str, Any] = {"session_id": session_id, "refund_id": refund_id,
                            "refund_reference": refund_reference or "rfd_" + secrets.token_hex(10),
                            "amount": f"{amount:.{exp}f}", "currency": currency}
    if not succeeded:
        data["reason"] = "card_closed"
    return {"type": "refund.succeeded" if succeeded else "refund.failed", "data": data}


def sign(body: str, *, msg_id: str | None = None, secret: str | None = None,
         timestamp: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers for a body, as One.com would send them."""
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    timestamp = timestamp or datetime.now(tz=UTC)
    signature = _webhook(secret or webhook_secret("test")).sign(msg_id, timestamp, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature}


class OnecomProvider(Provider):
    name = NAME
    label = "One.com"
    max_body_bytes = MAX_BODY_BYTES

    def is_configured(self, mode: str = "test") -> bool:
        return bool(checkout_url(mode) and webhook_secret(mode))

    def start_payment(self, *, session, params: Mapping[str, str]) -> PaymentStart:
        if not self.is_configured(session.mode):
            raise PaymentUnavailable("provider_not_configured", "One.com payments are not configured "
                                     f"(ONECOM_{session.mode.upper()}_CHECKOUT_URL).")
        base = settings.PUBLIC_BASE_URL
        query = {
            "reference": str(session.pk),
            "amount": f"{session.amount:.{currencies.exponent(session.currency)}f}",
            "currency": session.currency,
            "description": session.description or f"Payment to {session.account.name}",
            "return_url": f"{base}/checkout?session={session.pk}",
            "notify_url": f"{base}/webhooks/onecom",
        }
        if session.customer_email:
            query["email"] = session.customer_email
        query["signature"] = redirect_signature(query, mode=session.mode)
        page = checkout_url(session.mode)
        separator = "&" if "?" in page else "?"
        session_set_provider_reference(session_id=session.pk, provider=NAME, reference=str(session.pk))
        return PaymentStart(provider=NAME, redirect_url=page + separator + urlencode(query),
                            provider_reference=str(session.pk))

    def receive_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        payload, livemode = verify_with_mode(body, headers)
        # The webhook-id header is the event id: One.com resends a message with the same id.
        return parse(payload, event_id=headers["webhook-id"], livemode=livemode)


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


provider = OnecomProvider()
