"""The one way to reach a chain: web3.py on the node of a mode, after checking its chain id.

Each mode has its chain (WEB3_TEST_CHAIN_ID on WEB3_TEST_PROVIDER_URL, WEB3_LIVE_CHAIN_ID on
WEB3_LIVE_PROVIDER_URL): a test session is served only on the test chain, a live one only on
the live chain, and every charge records the chain it was made for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.conf import settings
from web3 import Web3
from web3.providers.rpc import HTTPProvider


class ChainUnavailable(Exception):
    """No node configured or reachable; nothing is decided, a later poll tries again."""


class ChainMismatch(Exception):
    """The node serves another chain than configured: trusting it could accept testnet coins."""


_override: Web3 | None = None
_clients: dict[str, Web3] = {}


@contextlib.contextmanager
def use_web3(w3: Web3) -> Iterator[Web3]:
    """Serve every chain read from `w3` (an in-process eth-tester chain in tests)."""
    global _override
    previous, _override = _override, w3
    try:
        yield w3
    finally:
        _override = previous


def chain_id_for(mode: str) -> int:
    """The chain a session of `mode` is served on; 0 when that mode has none."""
    return settings.WEB3_LIVE_CHAIN_ID if mode == "live" else settings.WEB3_TEST_CHAIN_ID


def _url_for(chain_id: int) -> tuple[str, str]:
    for mode in ("live", "test"):
        if chain_id and chain_id == chain_id_for(mode):
            return mode, getattr(settings, f"WEB3_{mode.upper()}_PROVIDER_URL")
    return "", ""


def configured_chains() -> list[int]:
    """The chain ids served here (one or two; the same one when both modes share a chain)."""
    ids = [settings.WEB3_TEST_CHAIN_ID, settings.WEB3_LIVE_CHAIN_ID]
    return sorted({i for i in ids if i and (_override is not None or _url_for(i)[1])})


def default_chain_id() -> int:
    """For reads that belong to no session (price feeds): the live chain, else the test chain."""
    return settings.WEB3_LIVE_CHAIN_ID or settings.WEB3_TEST_CHAIN_ID


def web3_client(chain_id: int | None = None) -> Web3:
    if _override is not None:
        return _override
    chain_id = default_chain_id() if chain_id is None else chain_id
    mode, url = _url_for(chain_id)
    if not url:
        raise ChainUnavailable(f"WEB3_{(mode or 'TEST').upper()}_PROVIDER_URL is not set.")
    if url not in _clients:
        _clients[url] = Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))
    return _clients[url]


def checked_web3(chain_id: int | None = None) -> Web3:
    chain_id = default_chain_id() if chain_id is None else chain_id
    if not _url_for(chain_id)[0]:
        # A charge made for a chain this deployment no longer serves for its mode: nothing is read.
        raise ChainUnavailable(f"Chain {chain_id} is not configured for any mode (WEB3_TEST_CHAIN_ID, WEB3_LIVE_CHAIN_ID).")
    w3 = web3_client(chain_id)
    try:
        served = w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise ChainUnavailable(f"The node of chain {chain_id} did not answer: {type(exc).__name__}.") from None
    if served != chain_id:
        raise ChainMismatch(f"The node serves chain {served}, the configured chain is {chain_id}.")
    return w3
