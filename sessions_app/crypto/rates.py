"""Prices of a crypto asset in a fiat currency. Never a silent fallback: no rate is an error."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from eth_utils import to_checksum_address

from sessions_app.crypto.chain import ChainMismatch, ChainUnavailable, checked_web3


class RateUnavailable(Exception):
    pass


def _norm(base: str) -> str:
    return base.lower() if base.lower().startswith("0x") else base.upper()


def price_key(asset: dict[str, Any]) -> str:
    """What an asset's price is looked up by: the native coin by its symbol, a token by its
    contract address only. A token named "ETH" is never priced as ETH."""
    if asset.get("type") == "erc20":
        return asset["address"].lower()
    return asset["symbol"].upper()


class RateSource(Protocol):
    name: str

    def price(self, base: str, quote: str) -> Decimal:
        """How many units of `quote` (a currency) one `base` is worth (price_key: a native symbol
        or a token's contract address)."""


class FixedRates:
    """A table from settings (WEB3_FIXED_RATES): the explicit default."""

    name = "fixed"

    def __init__(self, table: dict[tuple[str, str], Decimal] | None = None) -> None:
        self.table = settings.WEB3_FIXED_RATES if table is None else table

    def price(self, base: str, quote: str) -> Decimal:
        try:
            return self.table[(_norm(base), quote.upper())]
        except KeyError:
            raise RateUnavailable(f"No fixed rate for {base}/{quote} in WEB3_FIXED_RATES.") from None


AGGREGATOR_ABI: list[dict[str, Any]] = [
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"name": "latestRoundData", "type": "function", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
                 {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
                 {"name": "answeredInRound", "type": "uint80"}]},
]


class ChainlinkRates:
    """Chainlink AggregatorV3 price feeds (WEB3_CHAINLINK_FEEDS), read on the configured chain."""

    name = "chainlink"

    def __init__(self, feeds: dict[str, str] | None = None, *, max_age: int | None = None) -> None:
        self.feeds = settings.WEB3_CHAINLINK_FEEDS if feeds is None else feeds
        self.max_age = settings.WEB3_CHAINLINK_MAX_AGE_SECONDS if max_age is None else max_age

    def price(self, base: str, quote: str) -> Decimal:

        pair = f"{_norm(base)}/{quote.upper()}"
        address = self.feeds.get(pair)
        if not address:
            raise RateUnavailable(f"No Chainlink feed for {pair} in WEB3_CHAINLINK_FEEDS.")
        try:
            feed = checked_web3().eth.contract(address=to_checksum_address(address), abi=AGGREGATOR_ABI)
            decimals = feed.functions.decimals().call()
            _, answer, _, updated_at, _ = feed.functions.latestRoundData().call()
        except (ChainUnavailable, ChainMismatch) as exc:
            raise RateUnavailable(f"Chainlink {pair}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a reverted or missing contract
            raise RateUnavailable(f"Chainlink {pair} could not be read: {type(exc).__name__}.") from None
        if answer <= 0:
            raise RateUnavailable(f"Chainlink {pair} answered {answer}.")
        if time.time() - updated_at > self.max_age:
            raise RateUnavailable(f"Chainlink {pair} is stale (updated {int(time.time() - updated_at)} s ago).")
        return Decimal(answer).scaleb(-decimals)


def rate_source() -> RateSource:
    return ChainlinkRates() if settings.WEB3_RATE_SOURCE == "chainlink" else FixedRates()


def asset_price(*, asset: dict[str, Any], currency: str, source: RateSource | None = None) -> tuple[Decimal, str]:
    """The price of one unit of `asset` in `currency`, and where it came from."""
    if asset.get("currency"):
        # A stablecoin is worth 1 in its own currency, and we convert nothing else.
        if asset["currency"] != currency.upper():
            raise RateUnavailable(f"{asset['symbol']} is priced in {asset['currency']}, the session in {currency}.")
        return Decimal(1), "stablecoin"
    source = source or rate_source()
    return source.price(price_key(asset), currency), source.name
