from __future__ import annotations

import pytest


@pytest.fixture
def eth_chain(settings):
    """An in-process chain (eth-tester) that every chain read of the service goes to."""
    from web3 import EthereumTesterProvider, Web3

    from sessions_app.crypto.chain import use_web3

    w3 = Web3(EthereumTesterProvider())
    settings.WEB3_CHAIN_ID = w3.eth.chain_id
    settings.WEB3_MIN_CONFIRMATIONS = 1
    settings.WEB3_FIXED_RATES = {("ETH", "EUR"): __import__("decimal").Decimal("3000.00")}
    settings.WEB3_RATE_SOURCE = "fixed"
    with use_web3(w3):
        yield w3


@pytest.fixture
def anvil_node(settings):
    """anvil on 127.0.0.1; the service reaches it over HTTP through WEB3_PROVIDER_URL, as in production."""
    from decimal import Decimal

    from sessions_app.tests.web3_support import Anvil

    node = Anvil()
    settings.WEB3_PROVIDER_URL = node.url
    settings.WEB3_CHAIN_ID = node.chain_id
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
