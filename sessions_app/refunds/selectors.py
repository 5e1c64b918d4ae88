"""Reading refunds: per merchant, per session, and succeeded ones by day for revenue net of refunds."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from keys_app.models import Account
from sessions_app.refunds.models import Refund, RefundStatus
from sessions_app.selectors import parse_uuid


def refund_list(*, account: Account | int, session_id: uuid.UUID | None = None) -> QuerySet[Refund]:
    qs = Refund.objects.filter(account=account)
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    return qs.order_by("-created_at", "-id")


def refund_get_for_account(*, account: Account, refund_id: str) -> Refund | None:
    pk = parse_uuid(refund_id)
    if pk is None:
        return None
    return Refund.objects.filter(account=account, pk=pk).first()


def refunds_succeeded_by_day(*, account_id: int | None, mode: str, start: datetime, end: datetime) -> list[dict]:
    """[{"day", "currency", "amount", "count"}] of succeeded refunds: one query on refund_succeeded_day_idx."""
    qs = Refund.objects.filter(status=RefundStatus.SUCCEEDED, mode=mode, succeeded_at__gte=start,
                               succeeded_at__lt=end)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    return list(qs.annotate(day=TruncDate("succeeded_at")).values("day", "currency")
                .annotate(amount=Sum("amount"), count=Count("id")).order_by("day", "currency"))
