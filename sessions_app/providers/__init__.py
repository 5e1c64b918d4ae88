"""Payment providers behind one small interface.

A provider verifies its webhook and turns it into a normalized `PaymentEvent`;
`sessions_app.services.payment_event_apply` does the rest, whatever the provider.
"""

from __future__ import annotations


class WebhookRejected(Exception):
    """A webhook that failed verification; answered with a 4xx and never stored."""

    def __init__(self, code: str, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code
