from __future__ import annotations

import uuid

from django.db.models import QuerySet

from keys_app.models import Account
from sessions_app.models import PaymentSession


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def session_list(*, account: Account, status: str | None = None) -> QuerySet[PaymentSession]:
    qs = PaymentSession.objects.filter(account=account)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def session_get_for_account(*, account: Account, session_id: str) -> PaymentSession | None:
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.filter(account=account, pk=pk).first()


def session_get_public(*, session_id: str) -> PaymentSession | None:
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.select_related("account").filter(pk=pk).first()


def session_status_get(*, session_id: str) -> dict | None:
    """The public status: no customer data, one indexed read."""
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.filter(pk=pk).values("id", "status", "paid_at").first()
