from __future__ import annotations

from django.conf import settings
from django.db import models

from core import errors


class Mode(models.TextChoices):
    """Test or live: every key, session, event and document belongs to one of the two."""

    TEST = "test", "Test"
    LIVE = "live", "Live"


def ensure_live_allowed(what: str) -> None:
    """Refuse to create live `what` (keys, sessions) on a server started with ALLOW_DEBUG.

    ALLOW_DEBUG serves published placeholder secrets: nothing in live mode may depend on it.
    """
    if not settings.LIVE_MODE_ALLOWED:
        raise errors.Forbidden("live_mode_disabled",
                               f"This server runs with ALLOW_DEBUG (a development server): it creates no live {what}.")
