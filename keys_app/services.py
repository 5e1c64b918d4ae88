from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from audit.services import audit_record
from core import errors
from keys_app.keygen import ENTITLEMENT, generate_key, hash_key, parse_entitlement_key, parse_key
from keys_app.models import Account, ApiKey, EntitlementKey, Mode
from keys_app.selectors import (
    entitlement_cache_key,
    entitlement_key_get_by_hash,
    entitlement_key_get_cached,
    key_cache_key,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedKey:
    """A key together with its plain text, which exists only here and is never stored."""

    api_key: ApiKey
    plaintext: str


def _key_summary(key: ApiKey) -> dict[str, Any]:
    return {"id": key.pk, "display": key.display, "mode": key.mode, "status": key.status,
            "expires_at": key.expires_at}


@transaction.atomic
def key_issue(*, account: Account, mode: str = Mode.TEST, label: str = "", actor: str = "system") -> IssuedKey:
    plaintext = generate_key(mode)
    key = ApiKey.objects.create(
        account=account,
        mode=mode,
        key_hash=hash_key(plaintext),
        prefix=plaintext[:12],
        last4=plaintext[-4:],
        label=label,
    )
    audit_record(action="key.issued", subject_type="api_key", subject_id=key.pk, account_id=account.pk,
                 actor=actor, after=_key_summary(key))
    return IssuedKey(api_key=key, plaintext=plaintext)


@transaction.atomic
def merchant_create(*, name: str, email: str, live: bool = False, actor: str = "system") -> tuple[Account, IssuedKey]:
    account = Account.objects.create(name=name, email=email)
    audit_record(action="account.created", subject_type="account", subject_id=account.pk, account_id=account.pk,
                 actor=actor, after={"name": name, "email": email})
    issued = key_issue(account=account, mode=Mode.LIVE if live else Mode.TEST, label="initial", actor=actor)
    return account, issued


ACCOUNT_EDITABLE_FIELDS = ("name", "email", "address", "vat_id", "vat_rate", "invoice_prefix",
                           "enabled_providers", "web3_xpub", "web3_asset", "issued_key_mode",
                           "email_key_to_customer")


@transaction.atomic
def account_update(*, account: Account, actor: str, **changes: Any) -> Account:
    if not changes:
        return account
    account = Account.objects.select_for_update().get(pk=account.pk)
    before = {f: getattr(account, f) for f in changes}
    for field, value in changes.items():
        if field not in ACCOUNT_EDITABLE_FIELDS:
            raise errors.DomainError("field_not_editable", f"{field} is not editable.", field=field)
        setattr(account, field, value)
    if "web3" in (account.enabled_providers or []) and not (account.web3_xpub and account.web3_asset):
        raise errors.DomainError("web3_not_configured", "web3 needs web3_xpub and web3_asset.",
                                 field="enabled_providers")
    account.full_clean()
    account.save(update_fields=list(changes))
    audit_record(action="account.updated", subject_type="account", subject_id=account.pk, account_id=account.pk,
                 actor=actor, before=before, after={f: getattr(account, f) for f in changes})
    return account


@transaction.atomic
def web3_address_index_take(*, account_id: int) -> int:
    """Hand out the next derivation index of a merchant, once: the row lock serialises creators."""
    account = Account.objects.select_for_update().only("pk", "web3_next_index").get(pk=account_id)
    index = account.web3_next_index
    Account.objects.filter(pk=account_id).update(web3_next_index=index + 1)
    return index


@transaction.atomic
def key_revoke(*, key: ApiKey, actor: str) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.status == ApiKey.Status.REVOKED:
        return key
    before = _key_summary(key)
    key.status = ApiKey.Status.REVOKED
    key.revoked_at = timezone.now()
    key.save(update_fields=["status", "revoked_at"])
    audit_record(action="key.revoked", subject_type="api_key", subject_id=key.pk, account_id=key.account_id,
                 actor=actor, before=before, after=_key_summary(key))
    key_cache_forget(key_hash=key.key_hash)
    return key


ROTATION_OVERLAPS = {"0": timedelta(0), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@transaction.atomic
def key_rotate(*, key: ApiKey, overlap: timedelta, actor: str) -> IssuedKey:
    """Issue a successor of the same mode; the old key keeps working for `overlap`."""
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.status != ApiKey.Status.ACTIVE:
        raise errors.Conflict("key_not_active", "Only an active key can be rotated.")
    issued = key_issue(account=key.account, mode=key.mode, label=key.label, actor=actor)
    before = _key_summary(key)
    key.replaced_by = issued.api_key
    if overlap <= timedelta(0):
        key.status = ApiKey.Status.REVOKED
        key.revoked_at = timezone.now()
    else:
        key.expires_at = min(key.expires_at or timezone.now() + overlap, timezone.now() + overlap)
    key.save(update_fields=["replaced_by", "status", "revoked_at", "expires_at"])
    audit_record(action="key.rotated", subject_type="api_key", subject_id=key.pk, account_id=key.account_id,
                 actor=actor, before=before, after={**_key_summary(key), "replaced_by": issued.api_key.pk})
    key_cache_forget(key_hash=key.key_hash)
    return issued


@transaction.atomic
def key_upgrade_live(*, account: Account, actor: str) -> IssuedKey:
    """Staff approval: give an account a live key (its test keys stay as they are)."""
    issued = key_issue(account=account, mode=Mode.LIVE, label="live", actor=actor)
    audit_record(action="key.upgraded", subject_type="account", subject_id=account.pk, account_id=account.pk,
                 actor=actor, after={"live_key": issued.api_key.pk})
    return issued


# ---------------------------------------------------------------- entitlement keys


@dataclass(frozen=True)
class IssuedEntitlementKey:
    """An entitlement key together with its plain text, which exists only here and is never stored."""

    key: EntitlementKey
    plaintext: str


def _entitlement_summary(key: EntitlementKey) -> dict[str, Any]:
    return {"id": str(key.pk), "display": key.display, "mode": key.mode, "status": key.status,
            "session_id": str(key.session_id), "expires_at": key.expires_at,
            "superseded_by": str(key.superseded_by_id) if key.superseded_by_id else None}


def _entitlement_create(*, account_id: int, session_id, customer_email: str, mode: str, metadata: dict[str, Any],
                        expires_at, replaces: EntitlementKey | None = None) -> IssuedEntitlementKey:
    plaintext = generate_key(mode, ENTITLEMENT)
    key = EntitlementKey.objects.create(
        account_id=account_id, session_id=session_id, customer_email=customer_email, mode=mode,
        key_hash=hash_key(plaintext), prefix=plaintext[:12], last4=plaintext[-4:], metadata=metadata or {},
        expires_at=expires_at, replaces=replaces,
    )
    return IssuedEntitlementKey(key=key, plaintext=plaintext)


@transaction.atomic
def entitlement_key_issue(
    *, account: Account, session_id, customer_email: str, expires_in_days: int | None = None,
    metadata: dict[str, Any] | None = None, actor: str,
) -> IssuedEntitlementKey:
    """The key a paid session bought, in the merchant's `issued_key_mode`. The caller makes sure it
    happens once per session (under its lock); a unique constraint backs that."""
    now = timezone.now()
    issued = _entitlement_create(
        account_id=account.pk, session_id=session_id, customer_email=customer_email, mode=account.issued_key_mode,
        metadata=metadata or {}, expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    audit_record(action="entitlement_key.issued", subject_type="entitlement_key", subject_id=issued.key.pk,
                 account_id=account.pk, actor=actor, after=_entitlement_summary(issued.key))
    return issued


def _locked_entitlement(key: EntitlementKey) -> EntitlementKey:
    return EntitlementKey.objects.select_for_update().get(pk=key.pk)


@transaction.atomic
def entitlement_key_revoke(*, key: EntitlementKey, actor: str) -> EntitlementKey:
    """Stop a key now; its verification answers `revoked` from then on. Revoking twice changes nothing."""
    key = _locked_entitlement(key)
    if key.status == EntitlementKey.Status.REVOKED:
        return key
    before = _entitlement_summary(key)
    key.status = EntitlementKey.Status.REVOKED
    key.revoked_at = timezone.now()
    key.save(update_fields=["status", "revoked_at"])
    audit_record(action="entitlement_key.revoked", subject_type="entitlement_key", subject_id=key.pk,
                 account_id=key.account_id, actor=actor, before=before, after=_entitlement_summary(key))
    return key


ENTITLEMENT_ROTATION_OVERLAP = timedelta(hours=24)


def _supersede(key: EntitlementKey, *, mode: str, overlap: timedelta, action: str, actor: str) -> IssuedEntitlementKey:
    """A successor of `key` in `mode`, carrying what was bought (session, email, metadata, expiry);
    `key` itself keeps verifying for `overlap` and then answers `expired`."""
    key = _locked_entitlement(key)
    now = timezone.now()
    if key.status == EntitlementKey.Status.REVOKED:
        raise errors.Conflict("key_revoked", "A revoked key cannot be replaced.")
    if not key.is_current:
        raise errors.Conflict("key_superseded", "This key was already replaced; act on its successor.")
    if key.refunded_at is not None:
        raise errors.Conflict("key_refunded", "The purchase of this key was refunded.")
    if key.is_expired(now):
        raise errors.Conflict("key_expired", "This key has expired.")
    before = _entitlement_summary(key)
    issued = _entitlement_create(account_id=key.account_id, session_id=key.session_id,
                                 customer_email=key.customer_email, mode=mode, metadata=key.metadata,
                                 expires_at=key.expires_at, replaces=key)
    end = now + max(overlap, timedelta(0))
    key.superseded_by = issued.key
    key.superseded_at = now
    key.expires_at = min(key.expires_at, end) if key.expires_at else end
    key.save(update_fields=["superseded_by", "superseded_at", "expires_at"])
    audit_record(action=action, subject_type="entitlement_key", subject_id=key.pk, account_id=key.account_id,
                 actor=actor, before=before, after={**_entitlement_summary(key),
                                                    "successor": _entitlement_summary(issued.key)})
    return issued


@transaction.atomic
def entitlement_key_rotate(*, key: EntitlementKey, actor: str,
                           overlap: timedelta = ENTITLEMENT_ROTATION_OVERLAP) -> IssuedEntitlementKey:
    """A new key of the same mode; the old one keeps verifying for `overlap` (0: it stops now)."""
    return _supersede(key, mode=key.mode, overlap=overlap, action="entitlement_key.rotated", actor=actor)


@transaction.atomic
def entitlement_key_upgrade(*, key: EntitlementKey, actor: str,
                            overlap: timedelta = ENTITLEMENT_ROTATION_OVERLAP) -> IssuedEntitlementKey:
    """Test → live: a live successor; the test key keeps verifying (in test mode) for `overlap`."""
    if key.mode == Mode.LIVE:
        raise errors.Conflict("key_already_live", "This key is already a live key.")
    return _supersede(key, mode=Mode.LIVE, overlap=overlap, action="entitlement_key.upgraded", actor=actor)


@transaction.atomic
def entitlement_keys_mark_refunded(*, session_id, actor: str) -> int:
    """The purchase was refunded: every key of the session verifies as `refunded` from now on."""
    keys = list(EntitlementKey.objects.select_for_update().filter(session_id=session_id, refunded_at__isnull=True))
    now = timezone.now()
    for key in keys:
        key.refunded_at = now
        key.save(update_fields=["refunded_at"])
        audit_record(action="entitlement_key.refunded", subject_type="entitlement_key", subject_id=key.pk,
                     account_id=key.account_id, actor=actor, after=_entitlement_summary(key))
    return len(keys)


@dataclass(frozen=True)
class Verification:
    code: str
    key: EntitlementKey | None

    @property
    def valid(self) -> bool:
        return self.code == EntitlementKey.Verdict.VALID


_UNKNOWN = Verification(code=EntitlementKey.Verdict.UNKNOWN, key=None)


def entitlement_key_verify(*, account_id: int, mode: str, raw: Any) -> Verification:
    """What a merchant's service learns about a key a customer presented to it.

    A malformed key answers `unknown` before any lookup; another merchant's key answers
    `unknown` exactly as a key that does not exist. Lookups go through the shared cache, which
    every change of a key clears (see entitlement_cache_forget).
    """

    if not isinstance(raw, str):
        return _UNKNOWN
    raw = raw.strip()
    # Keys issued before entitlement keys had their own prefix were sk_ keys of a buyer's account.
    if parse_entitlement_key(raw) is None and parse_key(raw) is None:
        return _UNKNOWN
    digest = hash_key(raw)
    key = entitlement_key_get_cached(key_hash=digest)
    if key is None:
        key = entitlement_key_get_by_hash(key_hash=digest)
        if key is not None:
            entitlement_cache_put(key=key)
    # The lookup is by a hash, so timing reveals nothing about stored keys; the comparison
    # guards against a collation-insensitive match all the same.
    if key is None or key.account_id != account_id or not hmac.compare_digest(key.key_hash, digest):
        return _UNKNOWN
    return Verification(code=key.verdict(mode=mode), key=key)


def key_touch(*, key: ApiKey) -> None:
    """Record use at most once per interval: a conditional UPDATE, not a write per request."""
    now = timezone.now()
    threshold = now - timedelta(seconds=settings.API_KEY_TOUCH_INTERVAL_SECONDS)
    if key.last_used_at is None or key.last_used_at < threshold:
        ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gte=threshold).update(last_used_at=now)
        key.last_used_at = now


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


@dataclass(frozen=True)
class MerchantLogin:
    user: Any
    # Exactly one of these is set; neither is stored anywhere in plain text.
    password: str = ""
    set_password_url: str = ""


@transaction.atomic
def merchant_login_create(*, account: Account, password_link: bool = False, actor: str = "system") -> MerchantLogin:
    """A dashboard login for a merchant: may enter /admin/ (is_staff), never a superuser, sees its own rows."""


    account = Account.objects.select_for_update().get(pk=account.pk)
    if account.user_id is not None:
        raise errors.Conflict("login_exists", "This account already has a login.")
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=account.email).exists():
        raise errors.Conflict("login_exists", f"A login named {account.email} already exists.")
    user = user_model(username=account.email, email=account.email, is_staff=True, is_superuser=False)
    password = ""
    if password_link:
        user.set_unusable_password()
    else:
        password = secrets.token_urlsafe(15)
        user.set_password(password)
    user.save()
    account.user = user
    account.save(update_fields=["user"])
    audit_record(action="account.login_created", subject_type="account", subject_id=account.pk,
                 account_id=account.pk, actor=actor,
                 after={"username": user.username, "method": "link" if password_link else "password"})
    if not password_link:
        return MerchantLogin(user=user, password=password)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return MerchantLogin(user=user, set_password_url=f"{settings.PUBLIC_BASE_URL}/admin/set-password/{uid}/{token}/")
