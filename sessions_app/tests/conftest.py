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
