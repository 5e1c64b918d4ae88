"""The customer's claim page of a crypto refund: where the money should go."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from core import errors
from core.formatting import money
from core.throttling import CHECKOUT_THROTTLES, throttle_view
from sessions_app.refunds.web3 import refund_claim_submit, refund_for_claim


@never_cache
@require_http_methods(["GET", "POST"])
@throttle_view(*CHECKOUT_THROTTLES)
def refund_claim(request: HttpRequest, token: str) -> HttpResponse:
    refund = refund_for_claim(token)
    if refund is None:
        return render(request, "refunds/claim.html", {"invalid": True}, status=404)
    context = {"refund": refund, "amount": money(refund.amount, refund.currency),
               "merchant": refund.account.name, "test": refund.mode == "test"}
    status = 200
    if request.method == "POST":
        try:
            refund = refund_claim_submit(token=token, address=request.POST.get("address", ""))
            context["refund"], context["claimed"] = refund, True
        except errors.DomainError as exc:
            context["error"], status = exc.message, 409 if isinstance(exc, errors.Conflict) else 400
    return render(request, "refunds/claim.html", context, status=status)
