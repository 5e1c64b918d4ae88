"""Publishable keys (`pk_test_…`, `pk_live_…`) and the web origins allowed to use them.

A publishable key is public by design: it is pasted into the merchant's web pages. It may do
one thing, POST /create_session from a payment link of its merchant (sessions_app decides the
price from the link, never from the browser), so it is stored as it is and looked up by its
unique index. One key per merchant and mode; rotating replaces it at once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from core import errors
from keys_app.keygen import PUBLISHABLE, generate_key, parse_publishable_key
from keys_app.models import Account, PublishableKey

MAX_ALLOWED_ORIGINS = 20


def publishable_key_lookup(*, raw: str) -> PublishableKey | None:
    """The key (with its account) for a well-formed `pk_` key, or None."""
    if parse_publishable_key(raw) is None:
        return None
    return PublishableKey.objects.select_related("account").filter(key=raw).first()


def publishable_key_of(*, account_id: int, mode: str) -> PublishableKey | None:
    return PublishableKey.objects.filter(account_id=account_id, mode=mode).first()


def publishable_key_ensure(*, account: Account, mode: str) -> PublishableKey:
    """The merchant's publishable key of `mode`, made the first time it is asked for."""
    existing = publishable_key_of(account_id=account.pk, mode=mode)
    if existing is not None:
        return existing
    try:
        # Not audited: it only makes visible a key the merchant has had all along; a rotation is.
        with transaction.atomic():
            return PublishableKey.objects.create(account=account, mode=mode, key=generate_key(mode, PUBLISHABLE))
    except IntegrityError:
        # Two first requests at once: the other one made it.
        return PublishableKey.objects.get(account_id=account.pk, mode=mode)


@transaction.atomic
def publishable_key_rotate(*, account: Account, mode: str, actor: str) -> PublishableKey:
    """Replace the merchant's publishable key of `mode`; the old one stops working now."""
    key = publishable_key_ensure(account=account, mode=mode)
    key = PublishableKey.objects.select_for_update().get(pk=key.pk)
    before = {"mode": mode, "key": key.key}
    key.key = generate_key(mode, PUBLISHABLE)
    key.rotated_at = timezone.now()
    key.save(update_fields=["key", "rotated_at"])
    audit_record(action="publishable_key.rotated", subject_type="publishable_key", subject_id=key.pk,
                 account_id=account.pk, actor=actor, before=before, after={"mode": mode, "key": key.key})
    return key


def origin_clean(value: Any) -> str:
    """`scheme://host[:port]` as a browser sends it in the Origin header, or a DomainError."""
    if not isinstance(value, str) or not value or len(value) > 200:
        raise errors.DomainError("origin_invalid", "An origin is a string like https://shop.example.",
                                 field="allowed_origins")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password):
        raise errors.DomainError("origin_invalid", f"{value!r} is not an origin: send scheme://host[:port], "
                                 "without a path (for example https://shop.example).", field="allowed_origins")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def allowed_origins_clean(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise errors.DomainError("allowed_origins_invalid", "allowed_origins must be a list of origins.",
                                 field="allowed_origins")
    if len(value) > MAX_ALLOWED_ORIGINS:
        raise errors.DomainError("allowed_origins_invalid",
                                 f"allowed_origins may hold at most {MAX_ALLOWED_ORIGINS} origins.",
                                 field="allowed_origins")
    cleaned: list[str] = []
    for item in value:
        origin = origin_clean(item)
        if origin not in cleaned:
            cleaned.append(origin)
    return cleaned


def origin_allowed_for(*, account: Account, origin: str) -> bool:
    return origin in (account.allowed_origins or [])


def origin_allowed_anywhere(*, origin: str) -> bool:
    """Whether some merchant allows `origin`: a CORS preflight carries no key to say which."""
    return Account.objects.filter(allowed_origins__contains=[origin]).exists()
