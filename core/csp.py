"""Content-Security-Policy on the pages customers see (checkout, access links)."""

from __future__ import annotations

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(settings.CSP_PATH_PREFIXES) and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy()
        return response


def policy() -> str:
    """CONTENT_SECURITY_POLICY with the CSP_CONNECT_SRC origins added to connect-src (read per request,
    so a deployment or a test can widen it without restating the whole policy)."""
    base = settings.CONTENT_SECURITY_POLICY
    extra = " ".join(settings.CSP_CONNECT_SRC)
    if extra and "connect-src 'self'" in base:
        return base.replace("connect-src 'self'", f"connect-src 'self' {extra}", 1)
    return base
