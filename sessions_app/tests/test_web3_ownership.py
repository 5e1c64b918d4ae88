"""Web3 trust: an address belongs to one account, a token is priced by its contract, not its name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from keys_app.models import Account
from sessions_app.crypto.rates import FixedRates, RateUnavailable, asset_price, price_key
from sessions_app.models import PaymentSession, Status, Web3Charge
from sessions_app.tests.web3_support import (
    MERCHANT_MNEMONIC,
    NATIVE_ETH,
    deploy_token,
    merchant_address,
    merchant_xpub,
    send_eth,
)

OTHER_MNEMONIC = "test test test test test test test test test test test junk"
PRICE_WEI = 10**16  # 30.00 EUR at 3000 EUR/ETH


def _configure(client: APIClient, xpub: str, asset: dict | None = None):
    return client.patch("/account", {"web3_xpub": xpub, "web3_asset": asset or NATIVE_ETH,
                                     "enabled_providers": ["web3"]}, format="json")


@pytest.fixture
def other_api(other_merchant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    return client


def test_an_xpub_another_account_uses_is_refused(api, other_api, merchant, other_merchant, eth_chain):
    # given a merchant receiving on its xpub
    assert _configure(api, merchant_xpub()).status_code == 200

    # when another account asks for the same xpub
    response = _configure(other_api, merchant_xpub())

    # then it is refused, and keeps what it had
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "web3_xpub_taken"
    assert Account.objects.get(pk=other_merchant.pk).web3_xpub == ""
    # while an xpub of its own is fine, and the first merchant may save its own again
    assert _configure(other_api, merchant_xpub(OTHER_MNEMONIC)).status_code == 200
    assert _configure(api, merchant_xpub()).status_code == 200


def test_an_account_cannot_claim_anothers_payment_through_the_public_tx_endpoint(
        api, other_api, anon, merchant, eth_chain):
    # given the victim's session and its customer's payment to the victim's address
    assert _configure(api, merchant_xpub(MERCHANT_MNEMONIC)).status_code == 200
    victim = PaymentSession.objects.get(pk=api.post("/create_session", {"amount": "30.00", "currency": "EUR"},
                                                    format="json").json()["session_id"])
    tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    # when an attacker's account tries to receive on the victim's xpub, it is refused,
    # so it has no session on that address to submit the victim's transaction for
    assert _configure(other_api, merchant_xpub(MERCHANT_MNEMONIC)).status_code == 409
    assert not Web3Charge.objects.exclude(account=merchant).exists()

    # and the transaction pays the victim's session
    response = anon.post(f"/session/{victim.pk}/web3/tx", {"tx_hash": tx}, format="json")
    assert response.json()["status"] == Status.PAID


def test_a_token_named_eth_is_not_priced_as_eth(eth_chain):
    fake = {"type": "erc20", "address": deploy_token(eth_chain, owner=eth_chain.eth.accounts[0]),
            "symbol": "ETH", "decimals": 18}
    table = FixedRates({("ETH", "EUR"): Decimal("3000.00")})

    with pytest.raises(RateUnavailable):
        asset_price(asset=fake, currency="EUR", source=table)
    # the native coin still is
    assert asset_price(asset=NATIVE_ETH, currency="EUR", source=table) == (Decimal("3000.00"), "fixed")


def test_a_token_is_priced_by_its_contract_address(eth_chain):
    address = deploy_token(eth_chain, owner=eth_chain.eth.accounts[0])
    token = {"type": "erc20", "address": address, "symbol": "WBTC", "decimals": 8}
    table = FixedRates({(address.lower(), "EUR"): Decimal("60000.00"), ("WBTC", "EUR"): Decimal("1.00")})

    assert price_key(token) == address.lower()
    assert asset_price(asset=token, currency="EUR", source=table) == (Decimal("60000.00"), "fixed")


def test_a_session_in_a_token_named_eth_gets_no_price(api, merchant, eth_chain, settings):
    # given the fixed table of a deployment (ETH priced) and a merchant taking a token it calls ETH
    settings.WEB3_FIXED_RATES = {("ETH", "EUR"): Decimal("3000.00")}
    fake = {"type": "erc20", "address": deploy_token(eth_chain, owner=eth_chain.eth.accounts[0]),
            "symbol": "ETH", "decimals": 18}
    assert _configure(api, merchant_xpub(), asset=fake).status_code == 200

    response = api.post("/create_session", {"amount": "30.00", "currency": "EUR"}, format="json")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "web3_rate_unavailable"


def test_the_rate_table_keys_tokens_by_address_in_lower_case(monkeypatch):
    from payments_site.settings import env_rate_table

    monkeypatch.setenv("TEST_RATES_FOR_PARSING", "eth/eur=3000,0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48/usd=1.00")
    table = env_rate_table("TEST_RATES_FOR_PARSING", "")

    assert table == {("ETH", "EUR"): Decimal("3000"),
                     ("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "USD"): Decimal("1.00")}
