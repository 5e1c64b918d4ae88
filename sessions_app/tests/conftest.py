"""Fixtures for the session tests: sessions in any state, and signed Stripe deliveries."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from core import db
from keys_app.models import Mode
from keys_app.services import key_issue
from sessions_app.models import PaymentSession
from sessions_app.providers import stripe_provider
from sessions_app.services import session_create


@pytest.fixture(params=["one_statement", "locked"])
def write_path(request, monkeypatch) -> str:
    """Run a test on each write path of the webhook and of session_create.

    "one_statement": the fast path (sessions_app.one_statement and audit's link statement),
    PostgreSQL only; "locked": the locked ORM path alone, as on SQLite, also on PostgreSQL.
    """
    if request.param == "one_statement" and connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL only")
    monkeypatch.setattr(db, "ONE_STATEMENT", request.param == "one_statement")
    return request.param


@pytest.fixture
def make_session(merchant):
    """Create a session through the service, as the API does."""

    def make(*, account=None, amount: str = "99.99", currency: str = "EUR", mode: str = Mode.TEST,
             **fields: Any) -> PaymentSession:
        account = account or merchant
        key = account.api_key
        if key.mode != mode:
            key = key_issue(account=account, mode=mode).api_key
        return session_create(account=account, api_key=key, amount=Decimal(amount), currency=currency, mode=mode,
                              **fields)

    return make


def stripe_event(session: PaymentSession | str, event_type: str = "payment_intent.succeeded",
                 **top: Any) -> dict[str, Any]:
    """A Stripe-shaped event for a session (or a bare session id), with top-level overrides."""
    if isinstance(session, PaymentSession):
        event = stripe_provider.test_event(session_id=str(session.pk), event_type=event_type, amount=session.amount,
                                           currency=session.currency, livemode=session.mode == Mode.LIVE)
    else:
        event = stripe_provider.test_event(session_id=session, event_type=event_type, amount=Decimal("1"),
                                           currency="EUR")
    event.update(top)
    return event


@pytest.fixture
def deliver(client):
    """POST a body to /webhooks/stripe, signed with the first configured secret unless told otherwise."""

    def post(payload: dict[str, Any] | str | bytes, *, secret: str | None = None, timestamp: int | None = None,
             signature: str | None = None, sign: bool = True):
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        headers = {}
        if signature is not None:
            headers["HTTP_STRIPE_SIGNATURE"] = signature
        elif sign:
            text = body.decode() if isinstance(body, bytes) else body
            headers["HTTP_STRIPE_SIGNATURE"] = stripe_provider.sign(text, secret, timestamp)
        return client.post("/webhooks/stripe", body, content_type="application/json", **headers)

    return post


@pytest.fixture
def eth_chain(settings):
    """An in-process chain (eth-tester) that every chain read of the service goes to."""
    from web3 import EthereumTesterProvider, Web3

    from sessions_app.crypto.chain import use_web3

    w3 = Web3(EthereumTesterProvider())
    settings.WEB3_TEST_CHAIN_ID = w3.eth.chain_id
    settings.WEB3_MIN_CONFIRMATIONS = 1
    settings.WEB3_FIXED_RATES = {("ETH", "EUR"): __import__("decimal").Decimal("3000.00")}
    settings.WEB3_RATE_SOURCE = "fixed"
    with use_web3(w3):
        yield w3


@pytest.fixture
def anvil_node(settings):
    """anvil on 127.0.0.1; the service reaches it over HTTP through WEB3_TEST_PROVIDER_URL, as in production."""
    from decimal import Decimal

    from sessions_app.tests.web3_support import Anvil

    node = Anvil()
    settings.WEB3_TEST_PROVIDER_URL = node.url
    settings.WEB3_TEST_CHAIN_ID = node.chain_id
    settings.WEB3_MIN_CONFIRMATIONS = 1
    settings.WEB3_FIXED_RATES = {("ETH", "EUR"): Decimal("3000.00")}
    settings.WEB3_RATE_SOURCE = "fixed"
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=["eth-tester", "anvil"])
def chain(request):
    """The same scenario on the in-process chain and on a real node."""
    if request.param == "anvil":
        return request.getfixturevalue("anvil_node").w3
    return request.getfixturevalue("eth_chain")
