"""The one small interface every payment provider implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core import errors, safe_json
from sessions_app.events import ChainHint, PaymentEvent
from sessions_app.models import PaymentSession


class WebhookRejected(errors.DomainError):
    """A webhook that failed verification or is not well-formed; never stored."""


class WebhookUnavailable(WebhookRejected, errors.Unavailable):
    """We cannot verify a webhook now (not configured, the chain not answering): the sender retries."""


def json_object(body: bytes, *, what: str = "An event") -> dict[str, Any]:
    """A verified body as a JSON object, by our parser (bounded depth, finite numbers only)."""
    try:
        payload = safe_json.loads(body)
    except safe_json.JsonRefused as exc:
        raise WebhookRejected(exc.code, exc.message) from None
    except ValueError:
        raise WebhookRejected("invalid_json", "The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise WebhookRejected("event_invalid", f"{what} is a JSON object.")
    return payload


class PaymentStartError(errors.DomainError):
    """A payment could not be started: bad input."""


class PaymentUnavailable(PaymentStartError, errors.Unavailable):
    """The provider is not configured here."""


class ProviderFailed(PaymentStartError, errors.UpstreamFailed):
    """The provider's API answered with an error."""


@dataclass(frozen=True)
class PaymentStart:
    """What the checkout page does next: send the customer to `redirect_url`, or show `data`."""

    provider: str
    redirect_url: str = ""
    provider_reference: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Provider:
    """A provider starts payments and turns its verified webhooks into `PaymentEvent`s.

    It never changes a session itself: `lifecycle.payment_event_apply` owns the state machine.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    max_body_bytes: ClassVar[int] = 256 * 1024
    # Whether prepare_session writes anything (session creation then takes a transaction).
    prepares_sessions: ClassVar[bool] = False
    # Whether the checkout needs the receipt address before starting (Web3 sends it with the tx).
    needs_email_to_start: ClassVar[bool] = True

    def is_configured(self, mode: str = "test") -> bool:
        """Whether real (non-simulated) payments can be started in `mode` with the current settings."""
        return True

    def prepare_session(self, *, session: PaymentSession) -> None:
        """Called inside session creation; a provider may attach what it needs (an address, a quote)."""

    def start_payment(self, *, session: PaymentSession, params: Mapping[str, str]) -> PaymentStart:
        raise NotImplementedError

    def receive_webhook(self, *, body: bytes, headers: Mapping[str, str]) -> PaymentEvent | ChainHint:
        """Verify the delivery and parse it; raise WebhookRejected when it is not genuine.

        Providers never apply what they parse: sessions_app.webhooks does, for every provider.
        """
        raise NotImplementedError
