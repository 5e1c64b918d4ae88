"""Stripe: Stripe-Signature verification and the event types that move a session."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.utils import timezone

from core import currencies, safe_json
from sessions_app.events import Action, PaymentEvent
from sessions_app.providers import stripe_amounts
from sessions_app.providers.base import (
    PaymentStart,
    PaymentUnavailable,
    Provider,
    ProviderFailed,
    WebhookRejected,
    WebhookUnavailable,
    json_object,
)
from sessions_app.services import session_set_provider_reference

NAME = "stripe"
MAX_BODY_BYTES = 256 * 1024


# A Unix time in seconds has 10 digits until the year 2286; more is never a clock (and a 310-digit
# one overflowed the float arithmetic of the tolerance check).
MAX_TIMESTAMP_DIGITS = 12


def _parse_header(header: str) -> tuple[int, list[str]]:
    """(t, [v1, ...]). Exactly one t=: the Stripe library verifies with the first one, so a second
    (fresh) t= after an old signed one would pass our clock check while the old one is verified."""
    if not header.isascii():
        raise WebhookRejected("signature_malformed", "Stripe-Signature must be ASCII.")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if timestamp is not None:
                raise WebhookRejected("signature_malformed", "Stripe-Signature has more than one timestamp.")
            if not value.isdigit() or len(value) > MAX_TIMESTAMP_DIGITS:
                raise WebhookRejected("signature_malformed", "Stripe-Signature has a non-numeric timestamp.")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected("signature_malformed", "Stripe-Signature needs t=<timestamp> and v1=<signature>.")
    return timestamp, signatures


def webhook_secrets(mode: str) -> list[str]:
    return settings.STRIPE_LIVE_WEBHOOK_SECRETS if mode == "live" else settings.STRIPE_TEST_WEBHOOK_SECRETS


def secret_key(mode: str) -> str:
    """The API key of a session's mode, and only that one: a test session never reaches a live key."""
    key = settings.STRIPE_LIVE_SECRET_KEY if mode == "live" else settings.STRIPE_TEST_SECRET_KEY
    # The settings check the prefixes at start; checked again here, as a key set at run time is not.
    if key and not key.startswith((f"sk_{mode}_", f"rk_{mode}_")):
        raise PaymentUnavailable("provider_misconfigured", f"The Stripe key configured for {mode} mode is not a {mode} key.")
    return key


def _stated_mode(body: bytes) -> str:
    """The mode one of our own bodies states (`livemode`), to sign it with that mode's secret.

    Only for bodies we made (the simulator, the tests): a delivery is never parsed before it verifies.
    """
    try:
        payload = safe_json.loads(body)
    except (safe_json.JsonRefused, ValueError):
        return "test"
    return "live" if isinstance(payload, dict) and payload.get("livemode") is True else "test"


def verify(body: bytes, header: str | None, *, now: float | None = None) -> set[str]:
    """Accept the body if a current secret signed it within the tolerance, in either direction.

    Answers the modes whose secrets verify it ({"test"}, {"live"}, both when the two share a
    secret); receive_webhook then holds the event's own `livemode` to them, so an event signed
    with the test secret can never be a live one. Nothing is parsed before a signature verifies.
    """
    if not header:
        raise WebhookRejected("signature_missing", "The Stripe-Signature header is missing.")
    timestamp, _ = _parse_header(header)
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE
    # The SDK only rejects stale timestamps; one from the future is as suspect as one from the past.
    if abs((now or time.time()) - timestamp) > tolerance:
        raise WebhookRejected("signature_timestamp_out_of_range",
                              f"The signature timestamp is more than {tolerance} s away from our clock.")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("body_not_utf8", "The body is not UTF-8.") from None
    by_mode = {mode: webhook_secrets(mode) for mode in ("test", "live")}
    if not any(by_mode.values()):
        raise WebhookUnavailable("webhook_not_configured", "STRIPE_TEST_WEBHOOK_SECRET is not configured.")
    verified = set()
    for mode, keys in by_mode.items():
        for secret in keys:
            try:
                stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
            except stripe.SignatureVerificationError:
                continue
            verified.add(mode)
            break
    if verified:
        return verified
    if not all(by_mode.values()):
        # One mode has no secret: the delivery may be that mode's, which we cannot verify now.
        missing = next(mode for mode, keys in by_mode.items() if not keys)
        raise WebhookUnavailable("webhook_not_configured", f"STRIPE_{missing.upper()}_WEBHOOK_SECRET is not configured.")
    raise WebhookRejected("signature_invalid", "No signature matches the payload with a configured secret.")


def _obj(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def _int_or_none(value: Any) -> int | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    # Amounts are numeric(18, 3): anything wider is no real payment and would not store. Refused, not
    # read as "no amount", which would let the event pay whatever the session asked.
    if not 0 <= value < 10**15:
        raise WebhookRejected("amount_invalid", "The event's amount is out of range.")
    return value


def _service_minor(amount: int | None, currency: str | None) -> int | None:
    """Stripe's integer in the service's minor units (ISO 4217): 150000 ISK -> 1500."""
    if amount is None or not currency or not currencies.is_supported(currency.upper()):
        return amount
    value = stripe_amounts.from_stripe(amount, currency) * (Decimal(10) ** currencies.exponent(currency.upper()))
    if value != value.to_integral_value():
        raise WebhookRejected("amount_invalid", f"The amount is not a whole number of {currency.upper()} minor units.")
    return int(value)


def parse(body: bytes) -> PaymentEvent:
    payload = json_object(body)
    if not isinstance(payload.get("type"), str):
        raise WebhookRejected("event_invalid", "An event is a JSON object with a string `type`.")
    event_type = payload["type"]
    obj = _obj(payload)
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    session_ref = metadata.get("session_id") or obj.get("client_reference_id")
    # Stripe's events carry an id; the seed's hand-written payload does not, so its body stands in.
    if "id" in payload and not (isinstance(payload["id"], str) and payload["id"]):
        raise WebhookRejected("event_invalid", "An event's `id` is a non-empty string.")
    event_id = payload["id"] if "id" in payload else "body:" + hashlib.sha256(body).hexdigest()
    livemode = payload.get("livemode") if isinstance(payload.get("livemode"), bool) else None
    currency = obj.get("currency") if isinstance(obj.get("currency"), str) else None
    action, amount, reason, message = Action.NONE, None, "", ""
    extra: dict[str, Any] = {}
    reference = obj.get("payment_intent") if obj.get("object") == "checkout.session" else obj.get("id")
    if event_type == "payment_intent.processing":
        action = Action.PENDING
    elif event_type == "payment_intent.succeeded":
        action = Action.PAID
        amount = _int_or_none(obj.get("amount_received")) or _int_or_none(obj.get("amount"))
    elif event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        paid = obj.get("payment_status") == "paid"
        action = Action.PAID if paid else Action.PENDING
        amount = _int_or_none(obj.get("amount_total")) if paid else None
    elif event_type == "payment_intent.payment_failed":
        # One declined attempt: the PaymentIntent goes back to requires_payment_method and the
        # customer may try another card on the same page. It never ends the session.
        action = Action.ATTEMPT_FAILED
        error = obj.get("last_payment_error") if isinstance(obj.get("last_payment_error"), dict) else {}
        reason = str(error.get("decline_code") or error.get("code") or "payment_failed")
        message = str(error.get("message") or "")
    elif event_type == "payment_intent.canceled":
        action = Action.FAILED
        reason = str(obj.get("cancellation_reason") or "canceled")
    elif event_type == "checkout.session.async_payment_failed":
        action, reason = Action.FAILED, "payment_failed"
    elif event_type == "checkout.session.expired":
        action, reason = Action.FAILED, "expired"
    elif event_type in REFUND_EVENT_TYPES:
        action = Action.REFUNDED
        amount = _int_or_none(obj.get("amount_refunded" if obj.get("object") == "charge" else "amount"))
        reference = obj.get("payment_intent") or obj.get("charge") or obj.get("id")
        extra["refunds"] = refund_reports(obj)
    amount = _service_minor(amount, currency)
    return PaymentEvent(
        provider=NAME, event_id=event_id, event_type=event_type, payload=payload, action=action,
        session_ref=str(session_ref) if session_ref else None,
        provider_reference=str(reference or "")[:200], amount_minor=amount,
        currency=currency if action != Action.REFUNDED else None, livemode=livemode, failure_reason=reason,
        failure_message=message[:500], extra=extra,
    )


# A charge's refunds (charge.refunded lists them) or one refund (refund.*, charge.refund.updated).
REFUND_EVENT_TYPES = ("charge.refunded", "refund.created", "refund.updated", "refund.failed",
                      "charge.refund.updated")


def refund_reports(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Each refund in a charge or refund object, as sessions_app.refunds.webhook reads it, with
    amounts in the service's minor units (Stripe's own rules undone, as for payments)."""
    currency = obj.get("currency") if isinstance(obj.get("currency"), str) else None
    if obj.get("object") == "refund":
        refunds = [obj]
    else:
        listed = obj.get("refunds")
        refunds = listed.get("data") if isinstance(listed, dict) else None
        if not isinstance(refunds, list):
            # Recent API versions leave the list out of charge.refunded: only the charge's total is known.
            total = _service_minor(_int_or_none(obj.get("amount_refunded")), currency)
            return [{"charge": str(obj.get("id") or ""), "charge_total_minor": total, "status": "succeeded"}] \
                if total else []
    reports = []
    for refund in refunds:
        if not isinstance(refund, dict) or not isinstance(refund.get("id"), str):
            continue
        metadata = refund.get("metadata") if isinstance(refund.get("metadata"), dict) else {}
        reports.append({"id": refund["id"],
                        "amount_minor": _service_minor(_int_or_none(refund.get("amount")),
                                                       refund.get("currency") if isinstance(refund.get("currency"), str)
                                                       else currency),
                        "status": str(refund.get("status") or ""), "reason": refund.get("reason") or "",
                        "failure_reason": str(refund.get("failure_reason") or ""),
                        "refund_id": metadata.get("refund_id"), "charge": str(refund.get("charge") or "")})
    return reports


def test_event(
    *, session_id: str, event_type: str, amount: Decimal, currency: str, livemode: bool = False
) -> dict[str, Any]:
    """A Stripe-shaped event for a session, as `stripe trigger` would send it."""
    minor = stripe_amounts.to_stripe(amount, currency)
    pi = "pi_test_" + secrets.token_hex(12)
    obj: dict[str, Any] = {
        "id": pi, "object": "payment_intent", "amount": minor, "amount_received": minor,
        "currency": currency.lower(), "metadata": {"session_id": session_id}, "livemode": livemode,
    }
    if event_type == "payment_intent.payment_failed":
        obj["amount_received"] = 0
        obj["last_payment_error"] = {"code": "card_declined", "decline_code": "generic_decline",
                                     "message": "Your card was declined."}
    elif event_type.startswith("checkout.session."):
        obj = {"id": "cs_test_" + secrets.token_hex(12), "object": "checkout.session", "amount_total": minor,
               "currency": currency.lower(), "client_reference_id": session_id, "payment_intent": pi,
               "payment_status": "paid" if event_type == "checkout.session.completed" else "unpaid",
               "metadata": {"session_id": session_id}, "livemode": livemode}
    return {"id": "evt_test_" + secrets.token_hex(12), "object": "event", "type": event_type,
            "created": int(time.time()), "livemode": livemode, "data": {"object": obj}}


def sign(body: str, secret: str | None = None, timestamp: int | None = None) -> str:
    secret = secret or webhook_secrets(_stated_mode(body.encode()))[0]
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


# ---------------------------------------------------------------- starting a payment


def client(mode: str) -> stripe.StripeClient:
    key = secret_key(mode)
    if not key:
        raise PaymentUnavailable("provider_not_configured",
                                 f"Card payments are not configured (STRIPE_{mode.upper()}_SECRET_KEY).")
    options: dict[str, Any] = {"max_network_retries": 1}
    if settings.STRIPE_API_BASE:
        options["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(key, **options)


def _checkout_url(session, **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}{extra}"


class StripeProvider(Provider):
    name = NAME
    label = "Card (Stripe)"
    max_body_bytes = MAX_BODY_BYTES

    def is_configured(self, mode: str = "test") -> bool:
        try:
            return bool(secret_key(mode))
        except PaymentUnavailable:
            return False

    def start_payment(self, *, session, params: Mapping[str, str]) -> PaymentStart:
        """A Checkout Session (redirect) or, with STRIPE_CHECKOUT_FLOW=payment_intent, a PaymentIntent.

        Our session id is the idempotency key: a double click returns the same Stripe object.
        """
        minor = stripe_amounts.to_stripe(session.amount, session.currency)
        metadata = {"session_id": str(session.pk)}
        if session.client_reference_id:
            metadata["client_reference_id"] = session.client_reference_id
        options = {"idempotency_key": str(session.pk)}
        try:
            if settings.STRIPE_CHECKOUT_FLOW == "payment_intent":
                # Only the fields every Stripe-compatible server accepts; the receipt comes from us.
                create: dict[str, Any] = {"amount": minor, "currency": session.currency.lower(), "metadata": metadata}
                if params.get("payment_method"):
                    create["payment_method"] = params["payment_method"]
                intent = None
                if session.provider == NAME and session.provider_reference.startswith("pi_"):
                    # The customer came back: continue with the intent already made for this session.
                    intent = client(session.mode).v1.payment_intents.retrieve(session.provider_reference)
                    if intent["status"] in ("succeeded", "canceled"):
                        intent = None
                    elif params.get("payment_method") and intent["payment_method"] != params["payment_method"]:
                        intent = client(session.mode).v1.payment_intents.update(
                            intent["id"], params={"payment_method": params["payment_method"]})
                if intent is None:
                    intent = client(session.mode).v1.payment_intents.create(params=create, options=options)
                start = PaymentStart(provider=NAME, provider_reference=intent["id"],
                                     data={"payment_intent": intent["id"], "client_secret": intent["client_secret"],
                                           "status": intent["status"]})
            else:
                create = {
                    "mode": "payment",
                    "line_items": [{"quantity": 1, "price_data": {
                        "currency": session.currency.lower(), "unit_amount": minor,
                        "product_data": {"name": session.description or f"Payment to {session.account.name}"}}}],
                    "client_reference_id": str(session.pk),
                    "metadata": metadata,
                    "payment_intent_data": {"metadata": metadata},
                    "success_url": _checkout_url(session, stripe="return"),
                    "cancel_url": _checkout_url(session),
                }
                if session.customer_email:
                    create["customer_email"] = session.customer_email
                # Stripe accepts an expiry between 30 min and 24 h ahead; otherwise its 24 h default applies.
                if timedelta(minutes=31) <= session.expires_at - timezone.now() <= timedelta(hours=24):
                    create["expires_at"] = int(session.expires_at.timestamp())
                checkout = client(session.mode).v1.checkout.sessions.create(params=create, options=options)
                start = PaymentStart(provider=NAME, redirect_url=checkout["url"], provider_reference=checkout["id"])
        except stripe.StripeError as exc:
            message = getattr(exc, "user_message", None) or "The card payment could not be started."
            raise ProviderFailed("provider_error", str(message)) from None
        session_set_provider_reference(session_id=session.pk, provider=NAME, reference=start.provider_reference)
        return start

    def receive_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        modes = verify(body, headers.get("stripe-signature"))
        event = parse(body)
        stated = "live" if event.livemode else "test"
        if stated not in modes:
            raise WebhookRejected("signature_invalid",
                                  f"A {stated}-mode event must be signed with the {stated}-mode secret.")
        return event


provider = StripeProvider()
