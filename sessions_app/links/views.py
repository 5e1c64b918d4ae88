"""GET /pay/{slug}: a plain link (`<a href>`) that starts a session at the link's price."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core import errors, throttling
from sessions_app.links import selectors, services

LOCALE_RE = re.compile(r"^[a-z]{2}(-[A-Za-z]{2})?$")


class _LinkView:
    """What the limits read of a view: the link, once the slug named one."""

    def __init__(self, link_id: str | None) -> None:
        self.kwargs = {"link_id": link_id}


def _page(request: HttpRequest, *, status: int, title: str, message: str, link=None) -> HttpResponse:
    response = render(request, "checkout/link_unavailable.html", {
        "title": title, "message": message,
        "merchant_name": link.account.name if link else "", "description": link.description if link else ""},
        status=status)
    response["Cache-Control"] = "no-store"
    return response


def _amount(raw: str | None) -> Decimal | None:
    if raw is None or raw == "":
        return None
    if len(raw) > 40:
        raise errors.DomainError("amount_invalid", "amount is not a number.", field="amount")
    try:
        return Decimal(raw.strip())
    except InvalidOperation:
        raise errors.DomainError("amount_invalid", "amount is not a number.", field="amount") from None


@require_GET
def pay(request: HttpRequest, slug: str) -> HttpResponse:
    link = selectors.link_get_by_slug(slug=slug)
    limits = throttling.PayLinkLimits()
    # The IP counts for every visit, an unknown slug too; the link's own count once it is known.
    if not limits.allow_request(request, _LinkView(link.pk if link else None)):
        seconds = max(1, int(limits.wait() or 1) + 1)
        response = _page(request, status=429, title="Too many requests", link=link,
                         message=f"Too many checkouts were started from here. Please try again in {seconds} s.")
        response["Retry-After"] = str(seconds)
        return response
    if link is None:
        return _page(request, status=404, title="Payment link not found",
                     message="This payment link does not exist. Please ask the merchant for a new one.")
    if not link.active:
        return _page(request, status=410, title="This payment link is no longer active", link=link,
                     message="The merchant has turned this payment link off. Nothing was charged. Please ask "
                             "the merchant for a new link.")
    # Only prefills are taken from the address; anything else in it is ignored.
    email = (request.GET.get("prefilled_email") or "").strip()
    try:
        validate_email(email) if email and len(email) <= 254 else None
    except ValidationError:
        email = ""  # the buyer types it on the checkout page instead
    if len(email) > 254:
        email = ""
    locale = request.GET.get("locale") or ""
    try:
        session = services.link_session_start(
            link=link, actor=f"payment_link:{link.pk}", customer_email=email,
            client_reference_id=request.GET.get("client_reference_id") or "",
            amount=_amount(request.GET.get("amount")) if link.is_custom_amount else None)
    except errors.DomainError as exc:
        return _page(request, status=400, title="This payment link cannot be used like this", link=link,
                     message=exc.message)
    target = f"/checkout?session={session.pk}"
    if LOCALE_RE.match(locale):
        target += f"&locale={locale}"
    response = HttpResponse(status=303)
    response["Location"] = target
    # Never cached: each visit is a new session.
    response["Cache-Control"] = "no-store"
    return response
