"""Receiving addresses derived from a merchant's watch-only xpub (m/44'/60'/0'/0/i)."""

from __future__ import annotations

from bip_utils import Bip44, Bip44Coins


def address_derive(*, xpub: str, index: int) -> str:
    node = Bip44.FromExtendedKey(xpub, Bip44Coins.ETHEREUM)
    return node.AddressIndex(index).PublicKey().ToAddress()
