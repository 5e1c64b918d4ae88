"""Endpoint signing secrets: made per Standard Webhooks (whsec_ + base64) and stored sealed.

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived by HKDF from DJANGO_SECRET_KEY under a label
of its own, so the derived key serves nothing else. Changing DJANGO_SECRET_KEY makes stored
secrets unreadable: rotate every endpoint's secret after such a change.
"""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"payments.events.webhook-secret.v1"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(raw))


def seal(plaintext: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(plaintext.encode()).decode()


class CannotOpen(Exception):
    """The sealed secret was altered, or DJANGO_SECRET_KEY changed since it was sealed."""


def unseal(sealed: str) -> str:
    try:
        return _fernet(settings.SECRET_KEY).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise CannotOpen from None
