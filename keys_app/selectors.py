from __future__ import annotations

import logging
import uuid

from django.core.cache import cache
from django.db.models import QuerySet

from keys_app.models import ApiKey, EntitlementKey, Mode

logger = logging.getLogger(__name__)


def key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def entitlement_cache_key(key_hash: str) -> str:
    return f"ekey:{key_hash}"


def _cached(cache_key: str, model: type):
    """The row last cached under `cache_key`, or None.

    A miss, a tombstone left by a forget, or an unreachable cache all send the caller to the
    database: the cache can make a request faster, never make it fail.
    """
    try:
        value = cache.get(cache_key)
    except Exception:
        logger.warning("key cache unavailable; reading the key from the database", exc_info=True)
        return None
    return value if isinstance(value, model) else None


def key_get_by_hash(*, key_hash: str) -> ApiKey | None:
    return ApiKey.objects.select_related("account").filter(key_hash=key_hash).first()


def key_from_cache(value: object) -> ApiKey | None:
    """What the cache held under a key's cache key, as a key: a miss or a tombstone is None."""
    return value if isinstance(value, ApiKey) else None


# ---------------------------------------------------------------- entitlement keys


def entitlement_key_get_by_hash(*, key_hash: str) -> EntitlementKey | None:
    return EntitlementKey.objects.filter(key_hash=key_hash).first()


def entitlement_key_get_cached(*, key_hash: str) -> EntitlementKey | None:
    return _cached(entitlement_cache_key(key_hash), EntitlementKey)


def entitlement_key_is_known(*, key_hash: str) -> bool:
    return EntitlementKey.objects.filter(key_hash=key_hash).exists()


def entitlement_keys_list(*, account_id: int, session_id: uuid.UUID | None = None,
                          customer_email: str | None = None) -> QuerySet[EntitlementKey]:
    qs = EntitlementKey.objects.filter(account_id=account_id)
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    if customer_email:
        qs = qs.filter(customer_email__iexact=customer_email)
    return qs


def entitlement_key_get_for_account(*, account_id: int, key_id: str) -> EntitlementKey | None:
    try:
        pk = uuid.UUID(str(key_id))
    except ValueError:
        return None
    return EntitlementKey.objects.filter(account_id=account_id, pk=pk).first()


def entitlement_key_current_for_session(*, session_id) -> EntitlementKey | None:
    """The key a session's buyer holds now: the last of its chain of rotations and upgrades."""
    return (EntitlementKey.objects.filter(session_id=session_id, superseded_by__isnull=True)
            .order_by("-created_at").first())


def test_mail_allowed(*, account, mode: str, address: str) -> bool:
    """Whether mail of a `mode` session may go to `address`.

    Live mail goes to whoever the session names. Test mode must never reach a real inbox that did
    not ask for it (anyone can type any address on a test checkout): only the merchant's own
    address and the ones it lists in `test_email_recipients`.
    """
    if mode != "test":
        return True
    address = address.strip().lower()
    allowed = {account.email.strip().lower(), *(a.strip().lower() for a in account.test_email_recipients or [])}
    return bool(address) and address in allowed


def account_has_live_key(*, account_id: int) -> bool:
    """Whether the merchant was ever issued a live API key (a revoked one counts too)."""
    return ApiKey.objects.filter(account_id=account_id, mode=Mode.LIVE).exists()
