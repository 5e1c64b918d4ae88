"""With ALLOW_DEBUG, only loopback clients are served.

ALLOW_DEBUG turns unset secrets into published placeholders. ALLOWED_HOSTS alone does not keep
such a process private (any client can send `Host: localhost`), so the client's own address is
checked too; the socket's address, never a forwarded header a client could write.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class LoopbackOnlyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # No REMOTE_ADDR at all: an in-process WSGI call (a test harness), not a network peer.
        # Every server sets it for a connection; an empty one (a Unix socket) is refused.
        address = request.META.get("REMOTE_ADDR")
        if address is not None and not is_loopback(address):
            return HttpResponseForbidden("This development server (ALLOW_DEBUG) answers on loopback only.",
                                         content_type="text/plain")
        return self.get_response(request)
