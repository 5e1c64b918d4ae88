"""One signed POST to a merchant's endpoint, and what came back.

10 s in all, no redirects followed, at most 64 KiB of the answer read (2 KiB kept). The connection
goes to the address destinations.resolve checked; TLS still verifies the certificate for the name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError

from events_app import destinations

TIMEOUT_SECONDS = 10.0
READ_LIMIT = 64 * 1024
KEEP = 2 * 1024


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retryable(code: int | None) -> bool:
    """Only where trying again can help: no answer, 408, 429 or 5xx."""
    return code is None or code in (408, 429) or code >= 500


class Pools:
    """Connections kept for one batch of deliveries, per checked address (and name, for TLS)."""

    def __init__(self) -> None:
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}

    def get(self, scheme: str, address: str, port: int, host: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, address, port, host)
        pool = self._pools.get(key)
        if pool is None:
            timeout = urllib3.Timeout(total=TIMEOUT_SECONDS)
            if scheme == "https":
                pool = urllib3.HTTPSConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1,
                                                   server_hostname=host, assert_hostname=host,
                                                   cert_reqs="CERT_REQUIRED")
            else:
                pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
            self._pools[key] = pool
        return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def post(url: str, *, mode: str, body: bytes, headers: dict[str, str], pools: Pools | None = None) -> Answer:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port = destinations.parse(url, mode=mode)
        address = str(destinations.resolve(host, port, mode=mode)[0])
    except destinations.DestinationRefused as exc:
        return Answer(None, "", f"refused: {exc.message}"[:500], took())
    split = urllib3.util.parse_url(url)
    target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    own = pools is None
    pool = (Pools() if own else pools).get(scheme, address, port, host)
    host_header = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
    try:
        response = pool.urlopen("POST", target, body=body, headers={**headers, "Host": host_header},
                                redirect=False, retries=False, preload_content=False, assert_same_host=False)
        try:
            raw = response.read(READ_LIMIT)
        finally:
            response.release_conn()
        # Text as PostgreSQL stores it: no NUL characters.
        return Answer(response.status, raw[:KEEP].decode("utf-8", "replace").replace("\x00", ""), "", took())
    except (HTTPError, OSError) as exc:
        return Answer(None, "", f"{type(exc).__name__}: {exc}"[:500], took())
    finally:
        if own:
            pool.close()
