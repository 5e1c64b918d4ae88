"""The one way to reach the chain: web3.py on WEB3_PROVIDER_URL, after checking its chain id."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.conf import settings
from web3 import Web3
from web3.providers.rpc import HTTPProvider


class ChainUnavailable(Exception):
    """No node configured or reachable; nothing is decided, a later poll tries again."""


class ChainMismatch(Exception):
    """The node serves another chain than WEB3_CHAIN_ID: trusting it could accept testnet coins."""


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


def web3_client() -> Web3:
    if _override is not None:
        return _override
    url = settings.WEB3_PROVIDER_URL
    if not url:
        raise ChainUnavailable("WEB3_PROVIDER_URL is not set.")
    if url not in _clients:
        _clients[url] = Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))
    return _clients[url]


def checked_web3() -> Web3:
    w3 = web3_client()
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise ChainUnavailable(f"The node at WEB3_PROVIDER_URL did not answer: {type(exc).__name__}.") from None
    if chain_id != settings.WEB3_CHAIN_ID:
        raise ChainMismatch(f"The node serves chain {chain_id}, WEB3_CHAIN_ID is {settings.WEB3_CHAIN_ID}.")
    return w3
