from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core import currencies, errors
from events_app.services import event_emit
from keys_app.models import Account
from sessions_app.links.selectors import link_data
from sessions_app.models import PaymentLink, PaymentSession
from sessions_app.services import session_build, session_start

# What a buyer may bring along to a session (query parameters of /pay, or a publishable-key call).
CLIENT_REFERENCE_MAX = 200


def _amount_check(value: Decimal, currency: str, field: str) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise errors.DomainError("amount_not_positive", f"{field} must be greater than zero.", field=field)
    if value > settings.SESSION_MAX_AMOUNT:
        raise errors.DomainError("amount_too_large", f"{field} may be at most {settings.SESSION_MAX_AMOUNT}.",
                                 field=field)
    exp = currencies.exponent(currency)
    if value != value.quantize(Decimal(1).scaleb(-exp)):
        raise errors.DomainError("amount_precision", f"{currency} amounts have at most {exp} decimal places.",
                                 field=field)
    return value


def _custom_check(custom: dict[str, Decimal | None], currency: str) -> tuple[Decimal, Decimal, Decimal | None]:
    low = _amount_check(custom["min"], currency, "custom_amount.min")
    high = _amount_check(custom["max"], currency, "custom_amount.max")
    if high < low:
        raise errors.DomainError("custom_amount_invalid", "custom_amount.max must not be below custom_amount.min.",
                                 field="custom_amount.max")
    preset = custom.get("preset")
    if preset is not None:
        _amount_check(preset, currency, "custom_amount.preset")
        if not low <= preset <= high:
            raise errors.DomainError("custom_amount_invalid", "custom_amount.preset must lie between min and max.",
                                     field="custom_amount.preset")
    return low, high, preset


def link_price_clean(*, currency: str, amount: Decimal | None,
                     custom_amount: dict[str, Decimal | None] | None) -> tuple[str, Decimal | None, tuple | None]:
    """The currency, the fixed price or the custom range (min, max, preset), or a DomainError."""
    currency = currency.upper()
    if not currencies.is_supported(currency):
        raise errors.DomainError("currency_unsupported", f"Currency {currency!r} is not supported.", field="currency")
    if (amount is None) == (custom_amount is None):
        raise errors.DomainError("amount_required", "Give either amount (a fixed price) or custom_amount "
                                 "({min, max, preset}), not both.", field="amount")
    if amount is not None:
        return currency, _amount_check(amount, currency, "amount"), None
    return currency, None, _custom_check(custom_amount, currency)


@transaction.atomic
def link_create(*, account: Account, mode: str, actor: str, currency: str = "EUR", amount: Decimal | None = None,
                custom_amount: dict[str, Decimal | None] | None = None, description: str = "",
                providers: list[str] | None = None, entitlement: dict[str, Any] | None = None,
                metadata: dict[str, Any] | None = None, success_url: str = "", cancel_url: str = "") -> PaymentLink:
    currency, amount, custom = link_price_clean(currency=currency, amount=amount, custom_amount=custom_amount)
    enabled = account.enabled_providers or ["stripe"]
    for name in providers or []:
        if name not in enabled:
            raise errors.DomainError("provider_not_enabled", f"{name} is not enabled for this account "
                                     "(PATCH /account enabled_providers).", field="providers")
    link = PaymentLink(account=account, mode=mode, currency=currency, description=description,
                       providers=list(providers or []), entitlement=entitlement or {}, metadata=metadata or {},
                       success_url=success_url, cancel_url=cancel_url)
    if custom is None:
        link.amount = amount
    else:
        link.custom_amount_min, link.custom_amount_max, link.custom_amount_preset = custom
    link.save(force_insert=True)
    data = link_data(link)
    audit_record(action="payment_link.created", subject_type="payment_link", subject_id=link.pk,
                 account_id=account.pk, actor=actor, after=data)
    event_emit(account_id=account.pk, mode=mode, type="payment_link.created", data=data, object_id=link.pk)
    return link


# What may change on a link; its price and currency never do (a new price is a new link).
LINK_EDITABLE = ("active", "description")


@transaction.atomic
def link_update(*, link: PaymentLink, actor: str, **changes: Any) -> PaymentLink:
    for field in changes:
        if field not in LINK_EDITABLE:
            raise errors.DomainError("price_immutable" if field in ("amount", "currency", "custom_amount")
                                     else "field_not_editable",
                                     f"{field} of a payment link never changes: create a new link instead.",
                                     field=field)
    link = PaymentLink.objects.select_for_update().get(pk=link.pk)
    before = {f: getattr(link, f) for f in changes}
    changed = [f for f, v in changes.items() if getattr(link, f) != v]
    if not changed:
        return link
    for field in changed:
        setattr(link, field, changes[field])
    link.updated_at = timezone.now()
    link.save(update_fields=[*changed, "updated_at"])
    data = link_data(link)
    audit_record(action="payment_link.updated", subject_type="payment_link", subject_id=link.pk,
                 account_id=link.account_id, actor=actor, before=before, after={f: changes[f] for f in changed})
    event_emit(account_id=link.account_id, mode=link.mode, type="payment_link.updated",
               data={**data, "previous_attributes": {f: before[f] for f in changed}}, object_id=link.pk)
    return link


class LinkInactive(errors.Conflict):
    pass


def link_session_amount(*, link: PaymentLink, amount: Decimal | None) -> Decimal:
    """The session's price: the link's own, or the buyer's choice within a custom link's range."""
    if not link.is_custom_amount:
        if amount is not None:
            raise errors.DomainError("amount_not_allowed", "This payment link has a fixed price: amount cannot "
                                     "be sent.", field="amount")
        return link.amount
    if amount is None:
        return link.custom_amount_preset or link.custom_amount_min
    exp = currencies.exponent(link.currency)
    # The range first: quantizing 1E+999999 would overflow the context; within the range it cannot.
    if (not amount.is_finite() or not link.custom_amount_min <= amount <= link.custom_amount_max
            or amount != amount.quantize(Decimal(1).scaleb(-exp))):
        raise errors.DomainError("amount_out_of_range",
                                 f"amount must be between {link.custom_amount_min} and {link.custom_amount_max} "
                                 f"{link.currency}, with at most {exp} decimal places.", field="amount")
    return amount


def link_session_start(*, link: PaymentLink, actor: str, customer_email: str = "", client_reference_id: str = "",
                       amount: Decimal | None = None) -> PaymentSession:
    """A new session at the link's price, written as create_session writes its sessions."""
    if not link.active:
        raise LinkInactive("payment_link_inactive", "This payment link is no longer active.", field="payment_link")
    if len(client_reference_id) > CLIENT_REFERENCE_MAX or not client_reference_id.isprintable():
        raise errors.DomainError("client_reference_id_invalid",
                                 f"client_reference_id may be at most {CLIENT_REFERENCE_MAX} printable characters.",
                                 field="client_reference_id")
    price = link_session_amount(link=link, amount=amount)
    session = session_build(
        account=link.account, amount=price, currency=link.currency, mode=link.mode, description=link.description,
        customer_email=customer_email, metadata=dict(link.metadata or {}), entitlement=dict(link.entitlement or {}),
        client_reference_id=client_reference_id, success_url=link.success_url, cancel_url=link.cancel_url,
        providers=list(link.providers or []), payment_link=link,
    )
    return session_start(session, actor=actor, payment_link=link.pk)
