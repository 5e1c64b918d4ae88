from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum

from core import currencies
from core.formatting import iso_utc
from sessions_app.models import PaymentLink, PaymentSession, Status


def _money(value: Decimal | None, currency: str) -> str | None:
    if value is None:
        return None
    return str(currencies.in_minor_units(value, currency))


def link_url(link: PaymentLink) -> str:
    return f"{settings.PUBLIC_BASE_URL}/pay/{link.slug}"


def link_data(link: PaymentLink) -> dict[str, Any]:
    """A link as the API answers it and as its events carry it."""
    custom = None
    if link.is_custom_amount:
        custom = {"min": _money(link.custom_amount_min, link.currency),
                  "max": _money(link.custom_amount_max, link.currency),
                  "preset": _money(link.custom_amount_preset, link.currency)}
    return {
        "id": link.pk,
        "object": "payment_link",
        "url": link_url(link),
        "slug": link.slug,
        "active": link.active,
        "mode": link.mode,
        "amount": _money(link.amount, link.currency),
        "currency": link.currency,
        "custom_amount": custom,
        "description": link.description,
        "providers": link.providers,
        "entitlement": {"expires_in_days": (link.entitlement or {}).get("expires_in_days"),
                        "metadata": (link.entitlement or {}).get("metadata") or {}},
        "metadata": link.metadata,
        "success_url": link.success_url,
        "cancel_url": link.cancel_url,
        "created_at": iso_utc(link.created_at),
        "updated_at": iso_utc(link.updated_at),
    }


def links_list(*, account_id: int, mode: str, active: bool | None = None) -> QuerySet[PaymentLink]:
    qs = PaymentLink.objects.filter(account_id=account_id, mode=mode)
    if active is not None:
        qs = qs.filter(active=active)
    return qs


def link_get_for_account(*, account_id: int, mode: str, link_id: Any) -> PaymentLink | None:
    if not isinstance(link_id, str) or len(link_id) > 32:
        return None
    return PaymentLink.objects.filter(account_id=account_id, mode=mode, pk=link_id).first()


def link_get_by_slug(*, slug: str) -> PaymentLink | None:
    if len(slug) > 32:
        return None
    return PaymentLink.objects.select_related("account").filter(slug=slug).first()


def link_stats(*, link_id: str) -> dict[str, Any]:
    """Sessions started from a link, those paid, and the paid revenue (the link's partial index)."""
    row = (PaymentSession.objects.filter(payment_link_id=link_id)
           .aggregate(sessions=Count("pk"), paid=Count("pk", filter=Q(status=Status.PAID)),
                      revenue=Sum("amount", filter=Q(status=Status.PAID))))
    return {"sessions": row["sessions"] or 0, "paid": row["paid"] or 0, "revenue": row["revenue"] or Decimal("0")}
