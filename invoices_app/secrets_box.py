"""Encryption of a buyer's key between its issue and its one-time reveal.

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from DJANGO_SECRET_KEY by HKDF,
under a label of its own, so the derived key is useless for anything else Django signs.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"payments.invoices.key-reveal.v1"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


def seal(plaintext: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(plaintext.encode()).decode()


class CannotOpen(Exception):
    """The ciphertext was altered, or DJANGO_SECRET_KEY changed since it was sealed."""


def open_sealed(ciphertext: str) -> str:
    try:
        return _fernet(settings.SECRET_KEY).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise CannotOpen from None
