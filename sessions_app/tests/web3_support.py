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


def anvil_binary() -> Path:
    """The anvil binary that npm `@foundry-rs/anvil` ships for this platform (installed by `npm ci`)."""
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), platform.system().lower())
    path = ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `npm ci` (make test does).")
    return path


class Anvil:
    """A real Ethereum node on 127.0.0.1, on a free port, stopped by its PID."""

    def __init__(self, chain_id: int = 31337) -> None:
        import socket
        import subprocess
        import time

        from web3 import Web3

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.chain_id = chain_id
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(  # noqa: S603
            [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(chain_id),
             "--silent"], start_new_session=True)
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10}))
        deadline = time.monotonic() + 15
        while True:
            try:
                _ = self.w3.eth.chain_id
                break
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.05)

    def reorg(self, depth: int) -> None:
        # Replace the last `depth` blocks with empty ones: their transactions are gone.
        response = self.w3.provider.make_request("anvil_reorg", [depth, []])
        assert "error" not in response, response

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def price_feed_bytecode(*, answer: int, decimals: int = 8, stale: bool = False) -> str:
    """Creation code of a minimal Chainlink AggregatorV3 stand-in, assembled by hand (no compiler).

    decimals() returns `decimals`; latestRoundData() returns (1, answer, t, t, 1) where t is the
    block's timestamp, or 1 when `stale`.
    """
    updated = "6001" if stale else "42"  # PUSH1 1 | TIMESTAMP

    def runtime(dec_at: int, lrd_at: int) -> str:
        return (
            "600035" "60e01c"                       # selector = calldata[0:4]
            "80" "63313ce567" "14" f"61{dec_at:04x}" "57"   # decimals()
            "63feaf968c" "14" f"61{lrd_at:04x}" "57"        # latestRoundData()
            "6000" "80" "fd"                        # revert
        )

    head = len(bytes.fromhex(runtime(0, 0)))
    dec = "5b" f"60{decimals:02x}" "600052" "6020" "6000" "f3"
    dec_at, lrd_at = head, head + len(bytes.fromhex(dec))
    lrd = ("5b" "6001" "600052" "7f" + f"{answer:064x}" + "602052" + updated + "604052" + updated + "606052"
           + "6001" "608052" "60a0" "6000" "f3")
    code = runtime(dec_at, lrd_at) + dec + lrd
    size = len(bytes.fromhex(code))
    init = f"61{size:04x}" "600e" "6000" "39" f"61{size:04x}" "6000" "f3"  # CODECOPY the runtime, RETURN it
    assert len(bytes.fromhex(init)) == 14  # the runtime starts at byte 0x0e
    return "0x" + init + code


def deploy_price_feed(w3, *, owner: str, answer: int, decimals: int = 8, stale: bool = False) -> str:
    tx = w3.eth.send_transaction({"from": owner, "data": price_feed_bytecode(answer=answer, decimals=decimals,
                                                                            stale=stale), "gas": 300_000})
    return w3.eth.wait_for_transaction_receipt(tx, timeout=30)["contractAddress"]
