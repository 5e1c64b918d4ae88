"""Receiving a provider's webhook: size check, verification, parse, apply. Used by the
webhook views and by the test-mode simulator alike, so both take the same path."""

from __future__ import annotations

import dataclasses
import json

from sessions_app.models import WebhookEvent
from sessions_app.providers import WebhookRejected, stripe_provider
from sessions_app.services import WebhookResult, payment_event_apply, webhook_event_reprocess


def stripe_webhook_receive(*, body: bytes, signature_header: str | None, actor: str | None = None) -> WebhookResult:
    if len(body) > stripe_provider.MAX_BODY_BYTES:
        raise WebhookRejected("body_too_large", "The body is larger than 256 KiB.", 413)
    stripe_provider.verify(body, signature_header)
    event = stripe_provider.parse(body)
    return payment_event_apply(event, actor=actor)


# How each provider turns a stored payload back into a PaymentEvent (for reprocessing).
STORED_PAYLOAD_PARSERS = {
    stripe_provider.NAME: lambda payload: stripe_provider.parse(json.dumps(payload).encode()),
}


def webhook_event_reprocess_stored(*, webhook_event: WebhookEvent, actor: str) -> WebhookResult:
    parser = STORED_PAYLOAD_PARSERS.get(webhook_event.provider)
    if parser is None:
        return WebhookResult("unchanged", f"no parser for provider {webhook_event.provider}", webhook_event)
    try:
        event = parser(webhook_event.payload)
    except WebhookRejected as exc:
        return WebhookResult("unchanged", exc.message, webhook_event)
    # The stored id is the one that is unique; a payload without an id was keyed by its original bytes.
    event = dataclasses.replace(event, event_id=webhook_event.event_id)
    return webhook_event_reprocess(webhook_event_id=webhook_event.pk, event=event, actor=actor)
