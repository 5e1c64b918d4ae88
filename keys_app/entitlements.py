"""Entitlement keys: what a customer bought, owned by the merchant that sold it, verified by the
merchant's own service (POST /keys/verify). Never a key to our API."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core import errors
from events_app.services import event_emit
from keys_app.key_cache import entitlement_cache_put
from keys_app.keygen import ENTITLEMENT, generate_key, hash_key, parse_entitlement_key, parse_key
from keys_app.models import Account, EntitlementKey, Mode
from keys_app.selectors import (
    entitlement_key_get_by_hash,
    entitlement_key_get_cached,
)

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class IssuedEntitlementKey:
    """An entitlement key together with its plain text, which exists only here and is never stored."""

    key: EntitlementKey
    plaintext: str


def _entitlement_summary(key: EntitlementKey) -> dict[str, Any]:
    return {"id": str(key.pk), "display": key.display, "mode": key.mode, "status": key.status,
            "session_id": str(key.session_id), "expires_at": key.expires_at,
            "superseded_by": str(key.superseded_by_id) if key.superseded_by_id else None}


def _key_emit(key: EntitlementKey, type: str, **extra: Any) -> None:
    """The merchant's event (never the key itself: only its display form)."""
    event_emit(account_id=key.account_id, mode=key.mode, type=type, object_id=str(key.pk),
               data={"object": "key", **_entitlement_summary(key), "customer_email": key.customer_email or None,
                     **extra})


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
    _key_emit(issued.key, "key.issued")
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
    _key_emit(key, "key.revoked")
    return key


ENTITLEMENT_ROTATION_OVERLAP = timedelta(hours=24)


def _supersede(key: EntitlementKey, *, mode: str, overlap: timedelta, action: str, actor: str,
               event: str | None = None) -> IssuedEntitlementKey:
    """A successor of `key` in `mode`, carrying what was bought (session, email, metadata, expiry);
    `key` itself keeps verifying for `overlap` and then answers `expired`. `event`: the merchant's
    event to emit, if any."""
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
    if event is not None:
        _key_emit(key, event, successor=_entitlement_summary(issued.key))
    return issued


@transaction.atomic
def entitlement_key_rotate(*, key: EntitlementKey, actor: str,
                           overlap: timedelta = ENTITLEMENT_ROTATION_OVERLAP) -> IssuedEntitlementKey:
    """A new key of the same mode; the old one keeps verifying for `overlap` (0: it stops now)."""
    return _supersede(key, mode=key.mode, overlap=overlap, action="entitlement_key.rotated", actor=actor,
                      event="key.rotated")


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
