from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from audit.services import audit_record
from core import errors
from core.modes import ensure_live_allowed
from keys_app.key_cache import key_cache_forget
from keys_app.keygen import generate_key, hash_key
from keys_app.models import TEST_EMAIL_RECIPIENTS_MAX, Account, ApiKey, Mode

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
    if mode == Mode.LIVE:
        ensure_live_allowed("API keys")
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
                           "email_key_to_customer", "allowed_origins", "refund_revokes_key", "test_email_recipients")


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
    if "test_email_recipients" in changes:
        account.test_email_recipients = test_email_recipients_clean(account.test_email_recipients)
    if "web3_xpub" in changes and account.web3_xpub and web3_xpub_taken(xpub=account.web3_xpub, account_id=account.pk):
        raise errors.Conflict("web3_xpub_taken", "This xpub is already used by another account.", field="web3_xpub")
    # The xpub constraint, the only one, is checked above and caught below as a 409: not queried again.
    account.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            account.save(update_fields=list(changes))
    except IntegrityError:
        # Another account took the same xpub between the check and the write (account_unique_web3_xpub).
        raise errors.Conflict("web3_xpub_taken", "This xpub is already used by another account.",
                              field="web3_xpub") from None
    audit_record(action="account.updated", subject_type="account", subject_id=account.pk, account_id=account.pk,
                 actor=actor, before=before, after={f: getattr(account, f) for f in changes})
    return account


def test_email_recipients_clean(value: Any) -> list[str]:
    """At most TEST_EMAIL_RECIPIENTS_MAX valid addresses, lower case, each once (for any caller, not the API alone)."""
    if not isinstance(value, list | tuple):
        raise errors.DomainError("test_email_recipients_invalid", "test_email_recipients must be a list of addresses.",
                                 field="test_email_recipients")
    addresses = list(dict.fromkeys(str(item).strip().lower() for item in value))
    if len(addresses) > TEST_EMAIL_RECIPIENTS_MAX:
        raise errors.DomainError("test_email_recipients_too_many",
                                 f"At most {TEST_EMAIL_RECIPIENTS_MAX} test_email_recipients.", field="test_email_recipients")
    for address in addresses:
        try:
            if len(address) > 254:
                raise ValidationError("too long")
            validate_email(address)
        except ValidationError:
            raise errors.DomainError("test_email_recipients_invalid", f"{address!r} is not a valid email address.",
                                     field="test_email_recipients") from None
    return addresses


def web3_xpub_taken(*, xpub: str, account_id: int | None) -> bool:
    """Whether another account receives on this xpub: its addresses, and so its payments, are that account's."""
    return Account.objects.filter(web3_xpub=xpub).exclude(pk=account_id).exists()


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


def key_touch(*, key: ApiKey) -> None:
    """Record use at most once per interval: a conditional UPDATE, not a write per request."""
    now = timezone.now()
    threshold = now - timedelta(seconds=settings.API_KEY_TOUCH_INTERVAL_SECONDS)
    if key.last_used_at is None or key.last_used_at < threshold:
        ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gte=threshold).update(last_used_at=now)
        key.last_used_at = now


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
