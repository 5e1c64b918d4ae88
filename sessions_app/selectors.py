from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import AuditEvent
from core import db
from keys_app.models import Account
from sessions_app.models import LatePayment, PaymentSession, Status


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


def session_get(*, session_id: uuid.UUID) -> PaymentSession | None:
    """One session, every field, by a statement prepared once per connection (the webhook path)."""
    fields = PaymentSession._meta.concrete_fields
    row = db.fetchone(_session_select_sql(), [session_id])
    if row is None:
        return None
    values = [f.from_db_value(v, None, connection) if v is not None and hasattr(f, "from_db_value") else v
              for f, v in zip(fields, row, strict=True)]
    return PaymentSession.from_db(connection.alias, [f.attname for f in fields], values)


@functools.cache
def _session_select_sql() -> str:
    quote = connection.ops.quote_name
    meta = PaymentSession._meta
    return (f"SELECT {', '.join(quote(f.column) for f in meta.concrete_fields)} "  # noqa: S608 - names are ours
            f"FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s")


def late_payments_of(*, session: PaymentSession) -> QuerySet[LatePayment]:
    return LatePayment.objects.filter(session=session).order_by("received_at", "id")


def session_status_get(*, session_id: str) -> dict | None:
    """The public status: no customer data, one indexed read."""
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.filter(pk=pk).values("id", "status", "paid_at", "refund_status").first()


# ---------------------------------------------------------------- dashboard figures
# Each figure is one aggregate query whatever the number of rows; `account_id=None` means all merchants.


def _scoped(account_id: int | None, mode: str) -> QuerySet[PaymentSession]:
    qs = PaymentSession.objects.filter(mode=mode)
    return qs if account_id is None else qs.filter(account_id=account_id)


@dataclass(frozen=True)
class DashboardWindow:
    start: datetime
    end: datetime
    days: list[date]


def dashboard_window(*, now: datetime | None = None, days: int = 30) -> DashboardWindow:
    """The last `days` calendar days (UTC), today included."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    return DashboardWindow(start=start, end=now, days=[first + timedelta(days=i) for i in range(days)])


def revenue_per_day(*, account_id: int | None, mode: str, window: DashboardWindow) -> dict[str, list[tuple[date, Decimal, int]]]:
    """Paid revenue per currency and UTC day, every day of the window present (zero when nothing was paid)."""
    rows = (_scoped(account_id, mode)
            .filter(status=Status.PAID, paid_at__gte=window.start, paid_at__lte=window.end)
            .annotate(day=TruncDate("paid_at", tzinfo=UTC))
            .values("currency", "day").annotate(total=Sum("amount"), count=Count("id"))
            .order_by("currency", "day"))
    found: dict[str, dict[date, tuple[Decimal, int]]] = {}
    for row in rows:
        found.setdefault(row["currency"], {})[row["day"]] = (row["total"], row["count"])
    return {
        currency: [(d, *by_day.get(d, (Decimal("0"), 0))) for d in window.days]
        for currency, by_day in sorted(found.items())
    }


def sessions_by_status(*, account_id: int | None, mode: str, window: DashboardWindow) -> dict[str, int]:
    """Sessions created in the window, counted by their current status (every status present)."""
    rows = (_scoped(account_id, mode).filter(created_at__gte=window.start, created_at__lte=window.end)
            .order_by().values("status").annotate(n=Count("id")))
    counts = {status.value: 0 for status in Status}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


@dataclass(frozen=True)
class Conversion:
    created: int
    paid: int

    @property
    def rate(self) -> Decimal:
        if not self.created:
            return Decimal("0")
        return (Decimal(self.paid) * 100 / Decimal(self.created)).quantize(Decimal("0.1"))


def conversion(*, account_id: int | None, mode: str, window: DashboardWindow) -> Conversion:
    """Of the sessions created in the window, how many are paid."""
    row = (_scoped(account_id, mode).filter(created_at__gte=window.start, created_at__lte=window.end)
           .aggregate(created=Count("id"), paid=Count("id", filter=Q(status=Status.PAID))))
    return Conversion(created=row["created"], paid=row["paid"])


def top_failure_reasons(*, account_id: int | None, mode: str, window: DashboardWindow, limit: int = 5) -> list[tuple[str, int]]:
    rows = (_scoped(account_id, mode)
            .filter(status=Status.FAILED, failed_at__gte=window.start, failed_at__lte=window.end)
            .values("failure_reason").annotate(n=Count("id")).order_by("-n", "failure_reason")[:limit])
    return [(row["failure_reason"] or "unknown", row["n"]) for row in rows]


PAID_EXPORT_COLUMNS = ("session_id", "paid_at", "amount", "currency", "mode", "provider", "provider_reference",
                       "customer_email", "customer_name", "client_reference_id", "description", "merchant_id")


def paid_sessions_for_export(*, account_id: int | None, mode: str | None = None):
    """Rows for the accounting export, read in chunks: the table may be larger than memory."""
    qs = PaymentSession.objects.filter(status=Status.PAID)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if mode:
        qs = qs.filter(mode=mode)
    return (qs.order_by("paid_at", "id")
            .values_list("id", "paid_at", "amount", "currency", "mode", "provider", "provider_reference",
                         "customer_email", "customer_name", "client_reference_id", "description", "account_id")
            .iterator(chunk_size=2000))


def session_timeline(*, session_id: uuid.UUID):
    """The audit rows about one session, oldest first."""

    return (AuditEvent.objects.filter(subject_type="payment_session", subject_id=str(session_id))
            .order_by("created_at", "seq"))
