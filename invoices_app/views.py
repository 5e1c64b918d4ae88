"""The customer's access pages, behind a 7-day signed link. No API key, no login."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core import errors
from core.throttling import ACCESS_LINKS_THROTTLES, CHECKOUT_THROTTLES, check_limits, throttle_view
from invoices_app import selectors, tokens
from invoices_app.models import AccessLink, AccessLinkUse, CreditNote
from invoices_app.services.access import access_link_use_record
from invoices_app.services.credit_notes import credit_note_pdf_bytes, credit_note_pdf_filename
from invoices_app.services.documents import invoice_pdf_bytes, invoice_pdf_filename
from invoices_app.services.keys import key_reveal, key_rotate_by_customer
from invoices_app.tasks import access_links_email

logger = logging.getLogger(__name__)

_ERRORS = {
    401: ("This link is not valid", "The link is incomplete or was altered. Open it again from your email."),
    410: ("This link has expired", "Access links work for 7 days. Ask the merchant for a new one."),
    "revoked": ("This link was revoked", "The merchant has disabled this link. Ask them for a new one."),
}


def _error(request: HttpRequest, kind) -> HttpResponse:
    title, message = _ERRORS[kind]
    status = 401 if kind == 401 else 410
    return render(request, "invoices/access_error.html", {"title": title, "message": message}, status=status)


def _resolve(request: HttpRequest, token: str) -> AccessLink | HttpResponse:
    try:
        claims = tokens.token_decode(token)
    except tokens.TokenExpired:
        return _error(request, 410)
    except tokens.TokenInvalid:
        return _error(request, 401)
    link = selectors.access_link_get(jti=claims.jti)
    if link is None or str(link.session_id) != claims.session_id:
        return _error(request, 401)
    if link.revoked_at:
        return _error(request, "revoked")
    return link


def _client(request: HttpRequest) -> dict:
    return {"ip": request.META.get("REMOTE_ADDR"), "user_agent": request.headers.get("User-Agent", "")}


def _page(request: HttpRequest, link: AccessLink, token: str, **extra) -> HttpResponse:
    context = {"view": selectors.access_view(link=link), "token": token, **extra}
    response = render(request, "invoices/access.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response


@never_cache
@require_GET
def access_page(request: HttpRequest, token: str) -> HttpResponse:
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    access_link_use_record(link=link, action=AccessLinkUse.Action.VIEW, **_client(request))
    return _page(request, link, token)


@never_cache
@require_GET
def access_invoice_pdf(request: HttpRequest, token: str) -> HttpResponse:
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    # Only the stored file is served: rendering happens on workers, never here.
    pdf = invoice_pdf_bytes(invoice=link.invoice)
    if pdf is None:
        response = render(request, "invoices/access_error.html", {
            "title": "The PDF is being prepared", "message": "Try again in a minute."}, status=503)
        response["Retry-After"] = "60"
        return response
    access_link_use_record(link=link, action=AccessLinkUse.Action.PDF, **_client(request))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(link.invoice)}"'
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def access_credit_note_pdf(request: HttpRequest, token: str, number: str) -> HttpResponse:
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    note = CreditNote.objects.filter(session_id=link.session_id, number=number).first()
    pdf = credit_note_pdf_bytes(note=note) if note is not None else None
    if pdf is None:
        return render(request, "invoices/access_error.html", {
            "title": "No such credit note", "message": "It may still be being prepared."}, status=404)
    access_link_use_record(link=link, action=AccessLinkUse.Action.PDF, **_client(request))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{credit_note_pdf_filename(note)}"'
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_POST
def access_reveal_key(request: HttpRequest, token: str) -> HttpResponse:
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    plaintext = key_reveal(link=link, **_client(request))
    return _page(request, link, token, revealed_key=plaintext, reveal_refused=plaintext is None)


@never_cache
@require_POST
@throttle_view(*CHECKOUT_THROTTLES)
def access_rotate_key(request: HttpRequest, token: str) -> HttpResponse:
    """The buyer replaces their key: the new one is shown once, the old one stops at once."""
    link = _resolve(request, token)
    if isinstance(link, HttpResponse):
        return link
    try:
        plaintext = key_rotate_by_customer(link=link, **_client(request))
    except errors.DomainError as exc:
        return _page(request, link, token, rotate_error=exc.message)
    return _page(request, link, token, revealed_key=plaintext, rotated=True)


# The one answer to "email me my access links", whether or not the address bought anything.
LINKS_SENT = ("If that address has paid purchases, we have emailed fresh access links to it. "
              "Check your inbox in a few minutes.")


@never_cache
@require_http_methods(["GET", "POST"])
def access_links_request(request: HttpRequest) -> HttpResponse:
    """"Email me my access links": new links go to the address itself, never to the asker."""
    if request.method == "GET":
        return render(request, "invoices/access_links.html", {})
    email = (request.POST.get("email") or "").strip()
    try:
        if len(email) > 254:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        return render(request, "invoices/access_links.html",
                      {"error": "Enter a valid email address.", "email": email[:254]}, status=400)
    allowed, wait = check_limits([cls() for limits in ACCESS_LINKS_THROTTLES for cls in limits.members],
                                 request, None)
    if not allowed:
        seconds = max(1, math.ceil(wait or 1))
        response = render(request, "invoices/access_links.html",
                          {"error": f"Too many requests. Try again in {math.ceil(seconds / 60)} minutes."},
                          status=429)
        response["Retry-After"] = str(seconds)
        return response

    try:
        # Queued: the answer must not take longer for an address that bought something.
        access_links_email.delay(email)
    except Exception:
        logger.exception("could not queue the access links email")
    return render(request, "invoices/access_links.html", {"sent": LINKS_SENT})
