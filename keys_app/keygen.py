"""Key format: {sk|ek|pk}_{test|live}_ + 24 base62 chars (~143 bits) + 6-char checksum.

`sk_` keys are merchants' secret keys to our API; `ek_` keys are entitlement keys, which a
merchant sells and its own service verifies; `pk_` keys are merchants' publishable keys, which
may only start a session from a payment link. The checksum lets us reject a mistyped or
truncated key without touching the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib

ALPHABET = string.digits + string.ascii_letters
BODY_LEN = 24
CHECK_LEN = 6
KEY_RE = re.compile(rf"^(sk|ek|pk)_(test|live)_([0-9A-Za-z]{{{BODY_LEN}}})([0-9A-Za-z]{{{CHECK_LEN}}})$")
PREFIX_LEN = 12  # "sk_test_" + 4 characters of the body
SECRET, ENTITLEMENT, PUBLISHABLE = "sk", "ek", "pk"


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        out.append(ALPHABET[rem])
    return "".join(reversed(out))


def _checksum(head: str) -> str:
    return _base62(zlib.crc32(head.encode()), CHECK_LEN)


def generate_key(mode: str, kind: str = SECRET) -> str:
    head = f"{kind}_{mode}_" + "".join(secrets.choice(ALPHABET) for _ in range(BODY_LEN))
    return head + _checksum(head)


def _parse(raw: str, kind: str) -> str | None:
    match = KEY_RE.match(raw)
    if not match or match.group(1) != kind:
        return None
    head = raw[: -CHECK_LEN]
    if not hmac.compare_digest(_checksum(head), match.group(4)):
        return None
    return match.group(2)


def parse_key(raw: str) -> str | None:
    """The mode of a well-formed secret key (`sk_`) with a valid checksum, else None."""
    return _parse(raw, SECRET)


def parse_entitlement_key(raw: str) -> str | None:
    """The mode of a well-formed entitlement key (`ek_`) with a valid checksum, else None."""
    return _parse(raw, ENTITLEMENT)


def parse_publishable_key(raw: str) -> str | None:
    """The mode of a well-formed publishable key (`pk_`) with a valid checksum, else None."""
    return _parse(raw, PUBLISHABLE)


def looks_like_publishable_key(raw: str) -> bool:
    return raw.startswith(f"{PUBLISHABLE}_")


def looks_like_entitlement_key(raw: str) -> bool:
    return raw.startswith(f"{ENTITLEMENT}_")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
