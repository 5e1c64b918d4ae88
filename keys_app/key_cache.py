"""Key lookups cached across workers (Redis): put with an add, forget with a tombstone, so that a
revoke is seen everywhere at once and a copy read before it can never come back."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from keys_app.models import ApiKey, EntitlementKey
from keys_app.selectors import (
    entitlement_cache_key,
    key_cache_key,
)

logger = logging.getLogger(__name__)

# Left in the cache by a forget: readers treat it as a miss, and a put (an add, not a set)
# cannot replace it with a copy read before the change was committed.
KEY_CACHE_TOMBSTONE = "forgotten"


def _cache_lifetime(*, expires_at, touched_at=None) -> int:
    """Seconds a key may stay cached: API_KEY_CACHE_SECONDS at most, never past its expiry
    (nor past its next `last_used_at` touch, for a merchant key)."""
    lifetime = settings.API_KEY_CACHE_SECONDS
    if lifetime <= 0:
        return 0
    now = timezone.now()
    if touched_at is not None:
        touch_due = settings.API_KEY_TOUCH_INTERVAL_SECONDS - (now - touched_at).total_seconds()
        lifetime = min(lifetime, int(touch_due))
    if expires_at is not None:
        lifetime = min(lifetime, int((expires_at - now).total_seconds()))
    return lifetime


def _cache_add(cache_key: str, value: Any, lifetime: int) -> None:

    if lifetime < 1:
        return
    try:
        cache.add(cache_key, value, timeout=lifetime)
    except Exception:
        logger.warning("key cache unavailable; key not cached", exc_info=True)


def _cache_tombstone(cache_keys: list[str]) -> None:

    if not cache_keys:
        return
    try:
        cache.set_many(dict.fromkeys(cache_keys, KEY_CACHE_TOMBSTONE),
                       timeout=max(settings.API_KEY_CACHE_SECONDS, 1) * 2)
    except Exception:
        # The entry then lives out its lifetime (API_KEY_CACHE_SECONDS at most).
        logger.error("key cache unavailable; a changed key may be served from the cache until it expires",
                     exc_info=True)


def _cache_forget(cache_keys: list[str]) -> None:
    """Drop changed keys from the cache: now, and again once the change is committed.

    Now, so that the change counts at once for this process (and for tests that never commit);
    again after the commit, in case another request re-read the key in between. The cache is
    shared by every worker (Redis), so they all see the change with their next lookup.
    """
    _cache_tombstone(cache_keys)
    transaction.on_commit(lambda: _cache_tombstone(cache_keys))


def key_cache_put(*, key: ApiKey) -> None:
    """Cache an active key that was just read and touched, until its next touch is due.

    The entry expires when `last_used_at` would be refreshed, so a cached key never needs a
    write, and at most API_KEY_CACHE_SECONDS after it was read.
    """

    if key.status != ApiKey.Status.ACTIVE:
        return
    _cache_add(key_cache_key(key.key_hash), key,
               _cache_lifetime(expires_at=key.expires_at, touched_at=key.last_used_at))


def key_cache_forget(*, key_hash: str) -> None:

    _cache_forget([key_cache_key(key_hash)])


def account_keys_forget(*, account_id: int) -> None:
    """A cached key carries its account: when the account changes, forget all its keys."""

    _cache_forget([key_cache_key(h) for h in ApiKey.objects.filter(account_id=account_id)
                   .values_list("key_hash", flat=True)])


def entitlement_cache_put(*, key: EntitlementKey) -> None:
    """Cache an entitlement key read for a verification. Its verdict is worked out from the
    cached row at each verification (an expiry needs no invalidation); every save of the row
    forgets it (receivers.py), on every worker, since the cache is shared."""

    _cache_add(entitlement_cache_key(key.key_hash), key, _cache_lifetime(expires_at=None))


def entitlement_cache_forget(*, key_hashes: list[str]) -> None:

    _cache_forget([entitlement_cache_key(h) for h in key_hashes])
