from __future__ import annotations

from django.db import models


class Mode(models.TextChoices):
    """Test or live: every key, session, event and document belongs to one of the two."""

    TEST = "test", "Test"
    LIVE = "live", "Live"
