"""Endpoint signing secrets: made per Standard Webhooks (whsec_ + base64) and stored sealed
(core.sealing). Changing DJANGO_SECRET_KEY makes stored secrets unreadable: rotate every
endpoint's secret after such a change.
"""

from __future__ import annotations

import base64
import secrets

from core.sealing import Box, CannotOpen

__all__ = ["CannotOpen", "new_secret", "seal", "unseal"]

BOX = Box(b"payments.events.webhook-secret.v1")

seal = BOX.seal
unseal = BOX.open


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
