"""Receiving a provider's webhook: size check, verification, parse, apply. One path for every
provider, used by the webhook views and by the test-mode simulators alike."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from core import errors
from sessions_app.crypto import polling
from sessions_app.events import ChainHint, WebhookResult
from sessions_app.lifecycle import payment_event_apply, webhook_event_reprocess
from sessions_app.models import WebhookEvent
from sessions_app.providers import WebhookRejected, get_provider, onecom_provider, stripe_provider

# WebhookEvent.event_id is a varchar(255).
MAX_EVENT_ID_CHARS = 255


def webhook_receive(*, provider: str, body: bytes, headers: Mapping[str, str], actor: str | None = None) -> WebhookResult:
    try:
        handler = get_provider(provider)
    except KeyError:
        raise WebhookRejected("provider_unknown", f"No provider called {provider!r}.", 404) from None
    if len(body) > handler.max_body_bytes:
        raise errors.TooLarge("body_too_large", f"The body is larger than {handler.max_body_bytes // 1024} KiB.")
    # Header names are case-insensitive; providers read them in lower case.
    parsed = handler.receive_webhook(body=body, headers={k.lower(): v for k, v in headers.items()})
    if isinstance(parsed, ChainHint):
        return polling.web3_hint_receive(hint=parsed, actor=actor or f"webhook:{provider}")
    if len(parsed.event_id) > MAX_EVENT_ID_CHARS:
        # Cut to fit, two long ids sharing their first 255 characters would be one event.
        raise WebhookRejected("event_id_too_long", f"The event id is longer than {MAX_EVENT_ID_CHARS} characters.")
    return payment_event_apply(parsed, actor=actor)


def stripe_webhook_receive(*, body: bytes, signature_header: str | None, actor: str | None = None) -> WebhookResult:
    headers = {"stripe-signature": signature_header} if signature_header else {}
    return webhook_receive(provider="stripe", body=body, headers=headers, actor=actor)


# How each provider turns a stored payload back into a PaymentEvent (for reprocessing).
# Web3 hints are not replayed: the chain is the record, and the poller re-reads it.
STORED_PAYLOAD_PARSERS = {
    stripe_provider.NAME: lambda row: stripe_provider.parse(json.dumps(row.payload).encode()),
    onecom_provider.NAME: lambda row: onecom_provider.parse(row.payload, event_id=row.event_id),
}


def webhook_event_reprocess_stored(*, webhook_event: WebhookEvent, actor: str) -> WebhookResult:
    parser = STORED_PAYLOAD_PARSERS.get(webhook_event.provider)
    if parser is None:
        return WebhookResult("unchanged", f"no parser for provider {webhook_event.provider}", webhook_event)
    try:
        event = parser(webhook_event)
    except WebhookRejected as exc:
        return WebhookResult("unchanged", exc.message, webhook_event)
    # The stored id is the one that is unique; a payload without an id was keyed by its original bytes.
    event = dataclasses.replace(event, event_id=webhook_event.event_id)
    return webhook_event_reprocess(webhook_event_id=webhook_event.pk, event=event, actor=actor)
