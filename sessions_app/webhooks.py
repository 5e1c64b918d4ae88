"""Receiving a provider's webhook: size check, verification, parse, apply. Used by the
webhook views and by the test-mode simulator alike, so both take the same path."""

from __future__ import annotations

from sessions_app.providers import WebhookRejected, stripe_provider
from sessions_app.services import WebhookResult, payment_event_apply


def stripe_webhook_receive(*, body: bytes, signature_header: str | None, actor: str | None = None) -> WebhookResult:
    if len(body) > stripe_provider.MAX_BODY_BYTES:
        raise WebhookRejected("body_too_large", "The body is larger than 256 KiB.", 413)
    stripe_provider.verify(body, signature_header)
    event = stripe_provider.parse(body)
    return payment_event_apply(event, actor=actor)
