"""Rates for quotes: a fixed table, Chainlink feeds read on chain, stablecoins at 1:1. Never a guess."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sessions_app.crypto.rates import ChainlinkRates, FixedRates, RateUnavailable, asset_price
from sessions_app.models import PaymentSession
from sessions_app.tests.web3_support import NATIVE_ETH, configure_merchant, deploy_price_feed


def test_the_fixed_table_answers_only_for_pairs_it_has():
    rates = FixedRates({("ETH", "EUR"): Decimal("3000.00")})

    assert rates.price("eth", "eur") == Decimal("3000.00")
    with pytest.raises(RateUnavailable):
        rates.price("ETH", "USD")


def test_a_stablecoin_is_one_to_one_in_its_currency_and_nothing_else():
    asset = {"type": "erc20", "symbol": "EURC", "decimals": 6, "address": "0x" + "1" * 40, "currency": "EUR"}

    assert asset_price(asset=asset, currency="EUR") == (Decimal(1), "stablecoin")
    with pytest.raises(RateUnavailable):
        asset_price(asset=asset, currency="USD")


def test_chainlink_reads_the_feed_on_chain(chain):
    feed = deploy_price_feed(chain, owner=chain.eth.accounts[0], answer=2_512_34_000_000, decimals=8)

    price = ChainlinkRates({"ETH/EUR": feed}).price("ETH", "EUR")

    assert price == Decimal("2512.34")


def test_chainlink_refuses_a_stale_answer_and_a_missing_feed(eth_chain):
    stale = deploy_price_feed(eth_chain, owner=eth_chain.eth.accounts[0], answer=10**11, stale=True)

    with pytest.raises(RateUnavailable, match="stale"):
        ChainlinkRates({"ETH/EUR": stale}).price("ETH", "EUR")
    with pytest.raises(RateUnavailable, match="No Chainlink feed"):
        ChainlinkRates({}).price("ETH", "EUR")


def test_chainlink_refuses_an_address_that_is_not_a_feed(eth_chain):
    with pytest.raises(RateUnavailable):
        ChainlinkRates({"ETH/EUR": eth_chain.eth.accounts[5]}).price("ETH", "EUR")


def test_a_session_quoted_from_chainlink(eth_chain, merchant, api, settings):
    settings.WEB3_RATE_SOURCE = "chainlink"
    settings.WEB3_CHAINLINK_FEEDS = {"ETH/EUR": deploy_price_feed(eth_chain, owner=eth_chain.eth.accounts[0],
                                                                  answer=2_000 * 10**8)}
    configure_merchant(merchant, asset=NATIVE_ETH)

    created = api.post("/create_session", {"amount": "30.00", "providers": ["web3"]}, format="json").json()

    assert created["web3"]["amount"] == str(15 * 10**15)
    quote = PaymentSession.objects.get(pk=created["session_id"]).web3_charge.quotes.get()
    assert (quote.rate_source, quote.rate) == ("chainlink", Decimal("2000"))
