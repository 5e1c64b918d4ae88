"""Where merchant webhooks may go: never into our own network.

A destination's host is resolved and every address it resolves to is checked, when the endpoint
is saved and again right before each delivery, and the delivery connects to the address checked
(not to the name again), so a name that re-resolves elsewhere in between (DNS rebinding) cannot
redirect it. Loopback is allowed only to test-mode endpoints, and only with
MERCHANT_WEBHOOK_ALLOW_LOOPBACK (local development); live mode never reaches it.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from core import errors

# Cloud metadata services outside the link-local range (AWS IPv6, Alibaba, Oracle).
_METADATA = {ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")}


class DestinationRefused(errors.DomainError):
    pass


def _refused(code: str, message: str) -> DestinationRefused:
    return DestinationRefused(code, message, field="url")


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, mode: str) -> str | None:
    """Why a delivery may not go to `address`, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if settings.MERCHANT_WEBHOOK_ALLOW_LOOPBACK and mode != "live" else "loopback"
    if address in _METADATA or address.is_link_local:
        return "link-local or metadata"
    if address.is_private or address.is_multicast or address.is_reserved or address.is_unspecified \
            or not address.is_global:
        return "private or reserved"
    return None


def parse(url: str, *, mode: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, or DestinationRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("url_invalid", "The URL is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise _refused("url_invalid", "The URL must be an http(s) URL with a host.")
    if mode == "live" and scheme != "https":
        raise _refused("url_not_https", "Live-mode endpoints must use https.")
    if parts.username or parts.password:
        raise _refused("url_invalid", "The URL must not carry credentials.")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def resolve(host: str, port: int, *, mode: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` resolves to, each checked; DestinationRefused if any is not allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _refused("url_unresolvable", f"The host {host!r} does not resolve.") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        refusal = address_refusal(address, mode=mode)
        if refusal is not None:
            raise _refused("url_forbidden_address", f"The host {host!r} resolves to a {refusal} address.")
        if address not in addresses:
            addresses.append(address)
    return addresses


def destination_check(url: str, *, mode: str) -> None:
    """Refuse a URL a delivery may not go to (called when an endpoint is saved)."""
    _, host, port = parse(url, mode=mode)
    resolve(host, port, mode=mode)
