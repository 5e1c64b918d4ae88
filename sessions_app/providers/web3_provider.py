"""Web3: an address and a locked quote per session; payment proven by the chain, never by a message.

POST /webhooks/web3 takes HMAC-signed address-activity notifications. They are only a hint:
sessions_app.webhooks then has the chain read (sessions_app.crypto.services), and what it shows
goes through payment_event_apply like every other provider's events.

Signature: `Web3-Signature: t=<unix time>,v1=<hex HMAC-SHA256(WEB3_WEBHOOK_SECRET, "<t>.<body>")>`.
Body: {"chain_id": 1, "address": "0x…", "tx_hash": "0x…" (optional)}.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from django.conf import settings
from eth_utils import is_address

from sessions_app.crypto import services as crypto
from sessions_app.events import ChainHint
from sessions_app.providers.base import PaymentStart, Provider, WebhookRejected, WebhookUnavailable, json_object

NAME = "web3"
MAX_BODY_BYTES = 16 * 1024
SIGNATURE_HEADER = "web3-signature"
# A Unix time has 10 digits until the year 2286; 310 digits overflowed the clock check.
MAX_TIMESTAMP_DIGITS = 12


def sign(body: str | bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
    secret = secret or settings.WEB3_WEBHOOK_SECRET
    timestamp = int(time.time()) if timestamp is None else timestamp
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _parse_header(header: str) -> tuple[int, bytes]:
    """(t, v1 as bytes). One t= and one v1=, t at most MAX_TIMESTAMP_DIGITS digits."""
    malformed = WebhookRejected("signature_malformed", "Web3-Signature needs t=<unix time>,v1=<hex>.")
    parts: dict[str, str] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            if key in parts:
                raise malformed
            parts[key] = value
    raw_time = parts.get("t", "")
    if not (raw_time.isascii() and raw_time.isdigit()) or len(raw_time) > MAX_TIMESTAMP_DIGITS:
        raise malformed
    return int(raw_time), parts.get("v1", "").encode("utf-8", "surrogateescape")


def verify(body: bytes, header: str | None, *, now: float | None = None) -> None:
    secret = settings.WEB3_WEBHOOK_SECRET
    if not secret:
        raise WebhookUnavailable("webhook_not_configured", "WEB3_WEBHOOK_SECRET is not configured.")
    if not header:
        raise WebhookRejected("signature_missing", "The Web3-Signature header is missing.")
    timestamp, signature = _parse_header(header)
    if abs((now or time.time()) - timestamp) > settings.WEB3_WEBHOOK_TOLERANCE:
        raise WebhookRejected("signature_timestamp_out_of_range", "The signature timestamp is too far from our clock.")
    expected = sign(body, secret=secret, timestamp=timestamp).split("v1=")[1]
    # Bytes, not str: compare_digest refuses a str holding anything but ASCII (a 500 once).
    if not hmac.compare_digest(expected.encode(), signature):
        raise WebhookRejected("signature_invalid", "The signature does not match the body.")


class Web3Provider(Provider):
    name = NAME
    label = "Crypto (wallet)"
    max_body_bytes = MAX_BODY_BYTES

    prepares_sessions = True
    needs_email_to_start = False

    def prepare_session(self, *, session) -> None:
        crypto.charge_create(session=session)

    def start_payment(self, *, session, params: Mapping[str, str]) -> PaymentStart:
        # The pay action is where an expired price is replaced; reading the session never does.
        crypto.quote_refresh(session=session)
        return PaymentStart(provider=NAME, data=crypto.web3_public(session=session) or {})

    def receive_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> ChainHint:
        """A signed address-activity notification: verified and parsed here; the chain decides."""
        verify(body, headers.get(SIGNATURE_HEADER))
        payload = json_object(body, what="A notification")
        address, tx_hash = payload.get("address"), payload.get("tx_hash")
        # A chain of one of our modes; one whose node is not configured answers 503 when it is read.
        chains = sorted({c for c in (settings.WEB3_TEST_CHAIN_ID, settings.WEB3_LIVE_CHAIN_ID) if c})
        chain_id = payload.get("chain_id")
        if isinstance(chain_id, bool) or chain_id not in chains:
            raise WebhookRejected("chain_mismatch", f"chain_id must be one of {chains or 'the configured chains'}.")
        if not isinstance(address, str) or not is_address(address):
            raise WebhookRejected("address_invalid", "address must be a 0x-prefixed address.")
        if tx_hash is not None:
            try:
                tx_hash = crypto.normalize_tx_hash(tx_hash)
            except crypto.TxRejected as exc:
                raise WebhookRejected(exc.code, exc.message) from None
        return ChainHint(address=address, tx_hash=tx_hash, chain_id=chain_id)


provider = Web3Provider()
