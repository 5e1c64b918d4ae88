"""Customer-facing pages and provider webhooks (plain Django views, no API key)."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from payments_site.errors import error_response
from payments_site.throttling import CHECKOUT_THROTTLES, throttle_view
from sessions_app import currencies, selectors
from sessions_app.providers import WebhookRejected, stripe_provider
from sessions_app.services import session_set_customer
from sessions_app.webhook_guard import webhook_guard
from sessions_app.webhooks import stripe_webhook_receive

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
@webhook_guard(signature_header="Stripe-Signature", max_bytes=stripe_provider.MAX_BODY_BYTES)
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    # Refuse an oversized body before reading it.
    if length > stripe_provider.MAX_BODY_BYTES:
        return error_response("body_too_large", "The body is larger than 256 KiB.", status_code=413)
    try:
        result = stripe_webhook_receive(body=request.body, signature_header=request.headers.get("Stripe-Signature"))
    except WebhookRejected as exc:
        return error_response(exc.code, exc.message, status_code=exc.status_code)
    return JsonResponse({"received": True, "outcome": result.outcome, "detail": result.detail})


def _checkout_context(session) -> dict:
    exp = currencies.exponent(session.currency)
    return {
        "session": session,
        "merchant": session.account,
        "amount_display": f"{session.amount:.{exp}f}",
        "expired": session.is_open and session.is_past_expiry(),
        "test_mode": session.mode == "test",
        "simulator_enabled": bool(settings.STRIPE_WEBHOOK_SECRETS),
    }


@require_GET
def checkout(request: HttpRequest) -> HttpResponse:
    session = selectors.session_get_public(session_id=request.GET.get("session"))
    if session is None:
        return render(request, "checkout/not_found.html", status=404)
    return render(request, "checkout/checkout.html", _checkout_context(session))


@require_POST
@throttle_view(*CHECKOUT_THROTTLES)
def checkout_simulate(request: HttpRequest, session_id: str) -> HttpResponse:
    """Test mode only: pay or fail a session through the signed Stripe webhook path, like `stripe trigger`."""
    session = selectors.session_get_public(session_id=session_id)
    if session is None:
        return render(request, "checkout/not_found.html", status=404)
    context = _checkout_context(session)
    if session.mode != "test" or not context["simulator_enabled"]:
        context["error"] = "Simulated payments exist in test mode only."
        return render(request, "checkout/checkout.html", context, status=403)
    if not session.is_open or context["expired"]:
        return redirect(f"/checkout?session={session.pk}")
    outcome = request.POST.get("outcome")
    event_type = {"success": "payment_intent.succeeded", "failure": "payment_intent.payment_failed"}.get(outcome)
    if event_type is None:
        context["error"] = "Unknown simulation."
        return render(request, "checkout/checkout.html", context, status=400)
    email = (request.POST.get("email") or "").strip()
    if not session.customer_email and outcome == "success":
        # A paid session needs somewhere to send the receipt and the access link.
        try:
            validate_email(email)
        except ValidationError:
            context["error"] = "Enter a valid email address to receive your receipt."
            return render(request, "checkout/checkout.html", context, status=400)
        session = session_set_customer(session_id=session.pk, email=email, name=request.POST.get("name", "")[:200])
    event = stripe_provider.test_event(session_id=str(session.pk), event_type=event_type, amount=session.amount,
                                       currency=session.currency)
    body = json.dumps(event)
    stripe_webhook_receive(body=body.encode(), signature_header=stripe_provider.sign(body), actor="checkout:simulator")
    return redirect(f"/checkout?session={session.pk}")


