"""Customer-facing pages and provider webhooks (plain Django views, no API key)."""

from __future__ import annotations

import json
import logging

import segno
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core import currencies, errors
from core.http import domain_status, error_response
from core.throttling import CHECKOUT_THROTTLES, throttle_view
from sessions_app import selectors
from sessions_app.crypto import services as crypto
from sessions_app.inputs import CheckoutCustomerInput
from sessions_app.lifecycle import session_set_customer
from sessions_app.providers import PaymentStartError, get_provider, onecom_provider, stripe_provider
from sessions_app.webhook_guard import webhook_guard
from sessions_app.webhooks import stripe_webhook_receive, webhook_receive

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def provider_webhook(request: HttpRequest, provider: str) -> HttpResponse:
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    try:
        limit = get_provider(provider).max_body_bytes
    except KeyError:
        return error_response("provider_unknown", "No such provider.", status_code=404)
    # Refuse an oversized body before reading it.
    if length > limit:
        return error_response("body_too_large", f"The body is larger than {limit // 1024} KiB.", status_code=413)
    try:
        result = webhook_receive(provider=provider, body=request.body, headers=request.headers)
    except errors.DomainError as exc:
        return error_response(exc.code, exc.message, status_code=domain_status(exc))
    return JsonResponse({"received": True, "outcome": result.outcome, "detail": result.detail})


@csrf_exempt
@require_POST
@webhook_guard(signature_header="Stripe-Signature", max_bytes=stripe_provider.MAX_BODY_BYTES)
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    return provider_webhook(request, "stripe")


@csrf_exempt
@require_POST
@webhook_guard(signature_header="webhook-signature")
def onecom_webhook(request: HttpRequest) -> HttpResponse:
    return provider_webhook(request, "onecom")


@csrf_exempt
@require_POST
@webhook_guard(signature_header="Web3-Signature")
def web3_webhook(request: HttpRequest) -> HttpResponse:
    return provider_webhook(request, "web3")


def _simulators(session) -> list[str]:
    if session.mode != "test":
        return []
    available = []
    if "stripe" in session.providers and settings.STRIPE_TEST_WEBHOOK_SECRETS:
        available.append("stripe")
    if "onecom" in session.providers and settings.ONECOM_TEST_WEBHOOK_SECRET:
        available.append("onecom")
    return available


def _checkout_context(session) -> dict:
    exp = currencies.exponent(session.currency)
    simulators = _simulators(session)
    context = {
        "session": session,
        "merchant": session.account,
        "amount_display": f"{session.amount:.{exp}f}",
        "expired": session.is_open and session.is_past_expiry(),
        "test_mode": session.mode == "test",
        "simulator_enabled": "stripe" in simulators,
        "onecom_simulator_enabled": "onecom" in simulators,
        "stripe_enabled": "stripe" in session.providers and get_provider("stripe").is_configured(session.mode),
        "onecom_enabled": "onecom" in session.providers and get_provider("onecom").is_configured(session.mode),
        "web3": None,
    }
    if "web3" in session.providers:
        context["web3"] = _web3_context(session)
    if session.mode == "test" and session.status == "paid":
        context.update(selectors.test_delivery_shown(session=session))
    return context


def _web3_context(session) -> dict:
    try:
        data = crypto.web3_public(session=session)
    except errors.DomainError as exc:
        return {"error": exc.message}
    if data is None:
        return {"error": "Crypto payment is not available for this payment."}
    if data["quote_expired"] and session.is_open:
        # Reads never replace a quote: the customer asks for a new price (the pay action).
        return {**data, "needs_new_price": True}
    charge_asset = data["asset"]
    uri = crypto.eip681_uri(charge=session.web3_charge, amount=int(data["amount"]))
    qr = segno.make(uri, error="m")
    return {**data, "uri": uri, "quote_expires_display": parse_datetime(data["quote_expires_at"]),
            "amount_display": crypto.format_units(int(data["amount"]), charge_asset["decimals"]),
            "qr_svg": qr.svg_inline(scale=4, dark="#1a1f36", title="Payment QR code"),
            "token_address": charge_asset.get("address", "")}


@require_GET
def checkout(request: HttpRequest) -> HttpResponse:
    session = selectors.session_get_public(session_id=request.GET.get("session"))
    if session is None:
        return render(request, "checkout/not_found.html", status=404)
    return render(request, "checkout/checkout.html", _checkout_context(session))


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _take_email(request: HttpRequest, session, context: dict):
    """A paid session needs somewhere to send the receipt and the access link."""
    if session.customer_email:
        return session, None
    form = CheckoutCustomerInput(data={"email": (request.POST.get("email") or "").strip(),
                                       "name": request.POST.get("name", "")})
    if not form.is_valid():
        context["error"] = ("Enter a valid email address to receive your receipt." if "email" in form.errors
                            else "Enter your name in at most 200 characters.")
        return session, render(request, "checkout/checkout.html", context, status=400)
    return session_set_customer(session_id=session.pk, email=form.validated_data["email"],
                                name=form.validated_data["name"]), None


@require_POST
@throttle_view(*CHECKOUT_THROTTLES)
def checkout_pay(request: HttpRequest, session_id: str, provider: str) -> HttpResponse:
    """The customer picked a provider: start the payment there and send them on."""
    session = selectors.session_get_public(session_id=session_id)
    if session is None:
        return render(request, "checkout/not_found.html", status=404)
    context = _checkout_context(session)
    if provider not in session.providers:
        context["error"] = "This payment method is not offered for this payment."
        return render(request, "checkout/checkout.html", context, status=400)
    if not session.is_open or context["expired"]:
        return redirect(f"/checkout?session={session.pk}")
    handler = get_provider(provider)
    if handler.needs_email_to_start:
        session, failure = _take_email(request, session, context)
        if failure is not None:
            return failure
    try:
        start = handler.start_payment(session=session, params=request.POST)
    except PaymentStartError as exc:
        logger.warning("payment start failed", extra={"session_id": str(session.pk), "code": exc.code})
        if _wants_json(request):
            return error_response(exc.code, exc.message, status_code=domain_status(exc))
        context["error"] = exc.message
        return render(request, "checkout/checkout.html", context, status=domain_status(exc))
    if _wants_json(request):
        return JsonResponse({"provider": start.provider, "redirect_url": start.redirect_url or None,
                             "provider_reference": start.provider_reference, **start.data})
    if start.redirect_url:
        return redirect(start.redirect_url)
    # Read again: starting may have changed what the page shows (a new crypto price).
    context = {**_checkout_context(session), "start": start}
    return render(request, "checkout/checkout.html", context)


@require_POST
@throttle_view(*CHECKOUT_THROTTLES)
def checkout_simulate(request: HttpRequest, session_id: str) -> HttpResponse:
    """Test mode only: pay or fail a session through the provider's signed webhook path."""
    session = selectors.session_get_public(session_id=session_id)
    if session is None:
        return render(request, "checkout/not_found.html", status=404)
    context = _checkout_context(session)
    provider = request.POST.get("provider") or request.GET.get("provider") or "stripe"
    if provider not in _simulators(session):
        context["error"] = "Simulated payments exist in test mode only."
        return render(request, "checkout/checkout.html", context, status=403)
    if not session.is_open or context["expired"]:
        return redirect(f"/checkout?session={session.pk}")
    outcome = request.POST.get("outcome")
    if outcome not in ("success", "failure"):
        context["error"] = "Unknown simulation."
        return render(request, "checkout/checkout.html", context, status=400)
    if outcome == "success":
        session, failure = _take_email(request, session, context)
        if failure is not None:
            return failure
    if provider == "onecom":
        event_type = "payment.succeeded" if outcome == "success" else "payment.failed"
        body = onecom_provider.dumps(onecom_provider.test_event(
            session_id=str(session.pk), event_type=event_type, amount=session.amount, currency=session.currency))
        webhook_receive(provider="onecom", body=body.encode(), headers=onecom_provider.sign(body),
                        actor="checkout:simulator")
    else:
        event_type = "payment_intent.succeeded" if outcome == "success" else "payment_intent.payment_failed"
        event = stripe_provider.test_event(session_id=str(session.pk), event_type=event_type, amount=session.amount,
                                           currency=session.currency)
        body = json.dumps(event)
        stripe_webhook_receive(body=body.encode(), signature_header=stripe_provider.sign(body),
                               actor="checkout:simulator")
    return redirect(f"/checkout?session={session.pk}")
