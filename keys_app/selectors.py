from __future__ import annotations

from keys_app.models import ApiKey


def key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def key_get_by_hash(*, key_hash: str) -> ApiKey | None:
    return ApiKey.objects.select_related("account").filter(key_hash=key_hash).first()


def account_keys(*, account_id: int):
    return ApiKey.objects.filter(account_id=account_id).order_by("-created_at")
