"""Keep the key caches honest whatever saves a key or an account (services, admin, shell)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from keys_app.key_cache import account_keys_forget, entitlement_cache_forget, key_cache_forget
from keys_app.models import Account, ApiKey, EntitlementKey


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
