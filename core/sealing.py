"""Secrets stored sealed: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived by HKDF from
DJANGO_SECRET_KEY.

Each Box has a label of its own, so its derived key serves nothing else (neither another box nor
anything Django signs). A label is part of every stored ciphertext's key: never change one.
Changing DJANGO_SECRET_KEY makes what was sealed before unreadable.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class CannotOpen(Exception):
    """The sealed value was altered, sealed by another box, or DJANGO_SECRET_KEY changed since."""


@lru_cache(maxsize=8)
def _fernet(info: bytes, secret_key: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


class Box:
    def __init__(self, info: bytes) -> None:
        self.info = info

    def seal(self, plaintext: str) -> str:
        return _fernet(self.info, settings.SECRET_KEY).encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return _fernet(self.info, settings.SECRET_KEY).decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise CannotOpen from None
