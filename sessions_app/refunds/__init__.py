"""Refunds: money back through the provider that took it, at most what was paid.

models.py holds the Refund and its state machine; state.py writes its transitions (the
session's totals, the key, events, audit); services.py starts a refund; gateways.py asks each
provider for the money; webhook.py applies a provider's refund report; web3.py is the claim
and payout flow of a crypto refund.
"""
