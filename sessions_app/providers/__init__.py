"""Payment providers behind one small interface (`base.Provider`).

A provider starts a payment for a session and turns its verified webhook into a normalized
`PaymentEvent`; `sessions_app.services.payment_event_apply` does the rest, whatever the provider.
Adding a provider means adding a module here and a line in `_REGISTRY`.
"""

from __future__ import annotations

from importlib import import_module

from sessions_app.providers.base import PaymentStart, PaymentStartError, Provider, WebhookRejected, WebhookUnavailable

__all__ = ["PaymentStart", "PaymentStartError", "Provider", "WebhookRejected", "WebhookUnavailable", "get_provider", "provider_names"]

# Imported lazily: provider modules import the services, which must not import them back.
_REGISTRY = {
    "stripe": "sessions_app.providers.stripe_provider",
    "onecom": "sessions_app.providers.onecom_provider",
    "web3": "sessions_app.providers.web3_provider",
}
_instances: dict[str, Provider] = {}


def provider_names() -> list[str]:
    return list(_REGISTRY)


def get_provider(name: str) -> Provider:
    if name not in _REGISTRY:
        raise KeyError(name)
    if name not in _instances:
        _instances[name] = import_module(_REGISTRY[name]).provider
    return _instances[name]
