"""Cheap refusals for provider webhooks, before any database work: a body too large, a body that
is not JSON, a request without its signature header. Anyone can reach a webhook URL, so the
checks that cost nothing run first and a flood of junk never reaches PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse

from core import safe_json
from core.http import error_response
from core.parsers import unstorable_text

MAX_BODY_BYTES = 256 * 1024


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (content_type.startswith("application/") and content_type.endswith("+json"))


def webhook_guard(*, signature_header: str, max_bytes: int = MAX_BODY_BYTES) -> Callable:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                declared = int(request.headers.get("Content-Length") or 0)
            except ValueError:
                declared = 0
            too_large = error_response("body_too_large", f"The body is larger than {max_bytes // 1024} KiB.",
                                       status_code=413)
            # Refuse on the declared length, before reading a byte of the body.
            if declared > max_bytes:
                return too_large
            # The signature first: an unsigned call (a hand-made test) learns what it lacks most.
            if not (request.headers.get(signature_header) or "").strip():
                return error_response("signature_missing", f"The {signature_header} header is missing.")
            if not _is_json_type(request.content_type or ""):
                return error_response("unsupported_media_type", "Send the event as application/json.",
                                      status_code=415)
            body = request.body
            if len(body) > max_bytes:
                return too_large
            try:
                event = safe_json.loads(body)
            except safe_json.JsonRefused as exc:
                return error_response(exc.code, exc.message)
            except ValueError:
                return error_response("invalid_json", "The body is not valid JSON.")
            if unstorable_text(event):
                return error_response("invalid_json", "The body holds a NUL character or an unpaired surrogate.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
