"""Receiving a provider's webhook: size check, verification, parse, apply. One path for every
provider, used by the webhook views and by the test-mode simulators alike."""

from __future__ import annotations

from collections.abc import Mapping

from sessions_app.providers import WebhookRejected, get_provider
from sessions_app.services import WebhookResult


def webhook_receive(*, provider: str, body: bytes, headers: Mapping[str, str], actor: str | None = None) -> WebhookResult:
    try:
        handler = get_provider(provider)
    except KeyError:
        raise WebhookRejected("provider_unknown", f"No provider called {provider!r}.", 404) from None
    if len(body) > handler.max_body_bytes:
        raise WebhookRejected("body_too_large", f"The body is larger than {handler.max_body_bytes // 1024} KiB.", 413)
    # Header names are case-insensitive; providers read them in lower case.
    return handler.handle_webhook(body=body, headers={k.lower(): v for k, v in headers.items()}, actor=actor)


def stripe_webhook_receive(*, body: bytes, signature_header: str | None, actor: str | None = None) -> WebhookResult:
    headers = {"stripe-signature": signature_header} if signature_header else {}
    return webhook_receive(provider="stripe", body=body, headers=headers, actor=actor)
