"""Keep the key caches honest whatever saves a key or an account (services, admin, shell)."""

from __future__ import annotations

import re

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from keys_app.key_cache import account_keys_forget, entitlement_cache_forget, key_cache_forget
from keys_app.keygen import looks_like_publishable_key
from keys_app.models import Account, ApiKey, EntitlementKey, PublishableKey
from keys_app.publishable import origin_allowed_anywhere, origin_allowed_for, publishable_key_lookup


@receiver(post_save, sender=ApiKey, dispatch_uid="keys_app.api_key_changed")
@receiver(post_delete, sender=ApiKey, dispatch_uid="keys_app.api_key_deleted")
def api_key_changed(sender, instance: ApiKey, created: bool = False, **kwargs) -> None:
    if not created:
        key_cache_forget(key_hash=instance.key_hash)


@receiver(post_save, sender=EntitlementKey, dispatch_uid="keys_app.entitlement_key_changed")
@receiver(post_delete, sender=EntitlementKey, dispatch_uid="keys_app.entitlement_key_deleted")
def entitlement_key_changed(sender, instance: EntitlementKey, created: bool = False, **kwargs) -> None:
    if not created:
        entitlement_cache_forget(key_hashes=[instance.key_hash])


@receiver(post_save, sender=Account, dispatch_uid="keys_app.account_changed")
def account_changed(sender, instance: Account, created: bool = False, **kwargs) -> None:
    if not created:
        account_keys_forget(account_id=instance.pk)


@receiver(check_request_enabled, dispatch_uid="keys_app.cors_origin_allowed")
def cors_origin_allowed(sender, request, **kwargs) -> bool:
    """Whether this request's Origin may read the answer of POST /create_session (the only URL
    CORS_URLS_REGEX lets through). A request with a publishable key: that merchant's
    allowed_origins. A preflight carries no key, so: some merchant's allowed_origins; the real
    request that follows is decided by its key. A secret key from an allowed page is answered
    readably, so that the page sees why it is refused (secret_key_in_browser)."""
    origin = request.headers.get("Origin")
    # corsheaders enables a request when the URL matches OR a receiver says yes: the URL is ours to check.
    if not origin or not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    raw = (request.headers.get("X-API-Key") or "").strip()
    if looks_like_publishable_key(raw):
        # Called after the view: DRF has put the key it authenticated on the Django request too.
        key = getattr(request, "auth", None)
        if not isinstance(key, PublishableKey) or key.key != raw:
            key = publishable_key_lookup(raw=raw)
        return key is not None and origin_allowed_for(account=key.account, origin=origin)
    return origin_allowed_anywhere(origin=origin)
