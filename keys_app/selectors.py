from __future__ import annotations

import logging

from django.core.cache import cache

from keys_app.models import ApiKey

logger = logging.getLogger(__name__)


def key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def key_get_by_hash(*, key_hash: str) -> ApiKey | None:
    return ApiKey.objects.select_related("account").filter(key_hash=key_hash).first()


def key_get_cached(*, key_hash: str) -> ApiKey | None:
    """The key (with its account) as last cached by an authentication, or None.

    A miss, a tombstone left by key_cache_forget, or an unreachable cache all send the
    caller to the database: the cache can make a request faster, never make it fail.
    """
    try:
        value = cache.get(key_cache_key(key_hash))
    except Exception:
        logger.warning("API key cache unavailable; reading the key from the database", exc_info=True)
        return None
    return value if isinstance(value, ApiKey) else None


def account_keys(*, account_id: int):
    return ApiKey.objects.filter(account_id=account_id).order_by("-created_at")
