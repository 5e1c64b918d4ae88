"""Helpers for the Web3 tests: a merchant's watch-only xpub, ERC-20 contracts, payments."""

from __future__ import annotations

import json
from pathlib import Path

from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins

ROOT = Path(__file__).resolve().parents[2]
ERC20_ARTIFACT = ROOT / "node_modules" / "@openzeppelin" / "contracts" / "build" / "contracts" / "ERC20PresetFixedSupply.json"
# The merchant's wallet. Its private keys stay here, in the test: the service only ever sees the xpub.
MERCHANT_MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"


def merchant_xpub(mnemonic: str = MERCHANT_MNEMONIC) -> str:
    seed = Bip39SeedGenerator(mnemonic).Generate()
    change = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT)
    return change.PublicKey().ToExtended()


def merchant_address(index: int, mnemonic: str = MERCHANT_MNEMONIC) -> str:
    seed = Bip39SeedGenerator(mnemonic).Generate()
    change = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT)
    return change.AddressIndex(index).PublicKey().ToAddress()


def erc20_artifact() -> dict:
    return json.loads(ERC20_ARTIFACT.read_text())


def deploy_token(w3, *, owner: str, symbol: str = "EURC", supply: int = 10**30) -> str:
    artifact = erc20_artifact()
    contract = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = contract.constructor(f"{symbol} token", symbol, supply, owner).transact({"from": owner})
    return w3.eth.wait_for_transaction_receipt(tx, timeout=30)["contractAddress"]


def token(w3, address: str):
    return w3.eth.contract(address=address, abi=erc20_artifact()["abi"])


def send_eth(w3, *, sender: str, to: str, wei: int) -> str:
    tx = w3.eth.send_transaction({"from": sender, "to": to, "value": wei})
    w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    return tx.to_0x_hex()


def send_token(w3, *, contract: str, sender: str, to: str, units: int) -> str:
    tx = token(w3, contract).functions.transfer(to, units).transact({"from": sender})
    w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    return tx.to_0x_hex()


def mine(w3, blocks: int = 1) -> None:
    # evm_mine works on eth-tester and anvil alike; w3.testing.mine does not.
    for _ in range(blocks):
        w3.provider.make_request("evm_mine", [])


def configure_merchant(account, *, asset: dict, xpub: str | None = None) -> None:
    account.web3_xpub = xpub or merchant_xpub()
    account.web3_asset = asset
    account.enabled_providers = ["stripe", "web3"]
    account.save(update_fields=["web3_xpub", "web3_asset", "enabled_providers"])


NATIVE_ETH = {"type": "native", "symbol": "ETH", "decimals": 18}


def stablecoin(address: str) -> dict:
    return {"type": "erc20", "address": address, "symbol": "EURC", "decimals": 18, "currency": "EUR"}
