"""Validation of a merchant's Web3 setup: a watch-only xpub and the accepted asset."""

from __future__ import annotations

from typing import Any

from bip_utils import Bip44, Bip44Coins, Bip44Levels
from eth_utils import is_address, to_checksum_address

CURRENCY_CODES_HINT = "an ISO 4217 code such as EUR"


class SetupInvalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def xpub_validate(value: str) -> str:
    """Accept only the public key of the external chain m/44'/60'/0'/0 (BIP-44 depth 4)."""
    value = value.strip()
    if not value:
        return ""
    if value.startswith(("xprv", "tprv")) or "prv" in value[:4]:
        raise SetupInvalid("web3_xpub_private", "This is a private key. Send the extended public key (xpub) only.")
    try:
        node = Bip44.FromExtendedKey(value, Bip44Coins.ETHEREUM)
    except Exception:  # noqa: BLE001 - bip-utils raises several unrelated types for bad input
        raise SetupInvalid("web3_xpub_invalid", "Not a valid BIP-32 extended public key.") from None
    if not node.IsPublicOnly():
        raise SetupInvalid("web3_xpub_private", "This is a private key. Send the extended public key (xpub) only.")
    if node.Level() != Bip44Levels.CHANGE:
        raise SetupInvalid("web3_xpub_depth", "Send the xpub of the external chain m/44'/60'/0'/0 (depth 4).")
    # The canonical serialisation, so that one key written two ways is still one key to compare.
    return node.PublicKey().ToExtended()


def asset_validate(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SetupInvalid("web3_asset_invalid", "web3_asset must be a JSON object.")
    kind = value.get("type")
    symbol = value.get("symbol")
    decimals = value.get("decimals")
    if not isinstance(symbol, str) or not (symbol.isascii() and symbol.isalnum()) or not 1 <= len(symbol) <= 11:
        raise SetupInvalid("web3_asset_invalid", "web3_asset.symbol must be 1-11 letters or digits.")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 36:
        raise SetupInvalid("web3_asset_invalid", "web3_asset.decimals must be an integer from 0 to 36.")
    if kind == "native":
        unknown = set(value) - {"type", "symbol", "decimals"}
        if unknown:
            raise SetupInvalid("web3_asset_invalid", f"Unknown web3_asset field {sorted(unknown)[0]!r}.")
        return {"type": "native", "symbol": symbol.upper(), "decimals": decimals}
    if kind == "erc20":
        unknown = set(value) - {"type", "symbol", "decimals", "address", "currency"}
        if unknown:
            raise SetupInvalid("web3_asset_invalid", f"Unknown web3_asset field {sorted(unknown)[0]!r}.")
        address = value.get("address")
        if not isinstance(address, str) or not is_address(address):
            raise SetupInvalid("web3_asset_invalid", "web3_asset.address must be a 0x-prefixed contract address.")
        asset = {"type": "erc20", "address": to_checksum_address(address), "symbol": symbol.upper(),
                 "decimals": decimals}
        currency = value.get("currency")
        if currency is not None:
            if not isinstance(currency, str) or len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
                raise SetupInvalid("web3_asset_invalid", f"web3_asset.currency must be {CURRENCY_CODES_HINT}.")
            asset["currency"] = currency.upper()
        return asset
    raise SetupInvalid("web3_asset_invalid", 'web3_asset.type must be "native" or "erc20".')
