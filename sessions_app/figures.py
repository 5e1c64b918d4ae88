"""Reads: the dashboard's figures, from the daily summary (summaries.py) and the sessions newer
than its watermarks. Each figure costs the same few indexed queries whatever the merchant's history;
`account_id=None` means all merchants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from sessions_app import summaries
from sessions_app.models import DailyFailureReason, DailySummary, PaymentSession, Status, SummaryWatermark
from sessions_app.refunds.models import Refund


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


@dataclass(frozen=True)
class Conversion:
    created: int
    paid: int

    @property
    def rate(self) -> Decimal:
        if not self.created:
            return Decimal("0")
        return (Decimal(self.paid) * 100 / Decimal(self.created)).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class DashboardFigures:
    revenue: dict[str, list[tuple[date, Decimal, int]]]
    by_status: dict[str, int]
    conversion: Conversion
    failures: list[tuple[str, int]]
    summary: SummaryWatermark | None


def summary_watermark() -> SummaryWatermark | None:
    """How far the daily summary goes (None before its first run)."""
    mark = SummaryWatermark.objects.filter(pk=summaries.WATERMARK_PK).first()
    return mark if mark is not None and mark.paid_until > summaries.NEVER else None


def summary_currencies(*, account_id: int | None) -> list[str]:
    days = DailySummary.objects.all() if account_id is None else DailySummary.objects.filter(account_id=account_id)
    return list(days.order_by().values_list("currency", flat=True).distinct())


def _scoped(account_id: int | None, mode: str) -> QuerySet[PaymentSession]:
    qs = PaymentSession.objects.filter(mode=mode)
    return qs if account_id is None else qs.filter(account_id=account_id)


def _summary(model, account_id: int | None, mode: str, window: DashboardWindow) -> QuerySet:
    qs = model.objects.filter(mode=mode, day__gte=window.days[0], day__lte=window.days[-1])
    return qs if account_id is None else qs.filter(account_id=account_id)


def dashboard_figures(*, account_id: int | None, mode: str, window: DashboardWindow,
                      failure_limit: int = 5) -> DashboardFigures:
    """Every figure of the revenue page: the summary's days up to its watermarks, plus the
    sessions since (paid_at through its partial index, created_at through the account's).
    Revenue is net of refunds, each counted on the day it succeeded."""
    mark = summary_watermark()
    paid_until, created_until = (mark.paid_until, mark.created_until) if mark else (summaries.NEVER,) * 2

    revenue: dict[str, dict[date, tuple[Decimal, int]]] = {}
    by_status = {status.value: 0 for status in Status}

    def add_revenue(currency: str, day: date, total: Decimal, count: int) -> None:
        if count or total:
            before = revenue.setdefault(currency, {}).get(day, (Decimal("0"), 0))
            revenue[currency][day] = (before[0] + total, before[1] + count)

    for row in (_summary(DailySummary, account_id, mode, window).values("currency", "day")
                .annotate(net=Sum("net"), count=Sum("count"), created=Sum("sessions_created"),
                          pending=Sum("sessions_pending"), paid=Sum("sessions_paid"), failed=Sum("sessions_failed"))
                .order_by()):
        add_revenue(row["currency"], row["day"], row["net"], row["count"])
        for status in Status:
            by_status[status.value] += row[status.value]

    paid_since = max(paid_until, window.start)
    recent_paid = _scoped(account_id, mode).filter(paid_at__gte=paid_since, paid_at__lte=window.end)
    for row in summaries.paid_figures(recent_paid):
        add_revenue(row["currency"], row["day"], row["gross"], row["count"])
    recent_refunds = Refund.objects.filter(mode=mode, succeeded_at__gte=paid_since, succeeded_at__lte=window.end)
    if account_id is not None:
        recent_refunds = recent_refunds.filter(account_id=account_id)
    for row in summaries.refund_figures(recent_refunds):
        add_revenue(row["currency"], row["day"], -row["refunded"], 0)

    created_since = max(created_until, window.start)
    for row in (_scoped(account_id, mode).filter(created_at__gte=created_since, created_at__lte=window.end)
                .order_by().values("status").annotate(n=Count("id"))):
        by_status[row["status"]] += row["n"]

    failures: dict[str, int] = {}
    for row in _summary(DailyFailureReason, account_id, mode, window).values("reason").annotate(n=Sum("count")).order_by():
        failures[row["reason"]] = failures.get(row["reason"], 0) + row["n"]
    recent_failed = _scoped(account_id, mode).filter(failed_at__gte=paid_since, failed_at__lte=window.end)
    if paid_since > summaries.NEVER:
        # Through the (account, status, created_at) index: a session fails within a day of being made.
        recent_failed = recent_failed.filter(created_at__gte=paid_since - summaries.FAILURE_LOOK_BACK)
    for row in summaries.failure_figures(recent_failed):
        failures[row["failure_reason"]] = failures.get(row["failure_reason"], 0) + row["count"]
    ranked = sorted(((reason, n) for reason, n in failures.items() if n), key=lambda item: (-item[1], item[0]))

    return DashboardFigures(
        revenue={currency: [(d, *by_day.get(d, (Decimal("0"), 0))) for d in window.days]
                 for currency, by_day in sorted(revenue.items())},
        by_status=by_status,
        conversion=Conversion(created=sum(by_status.values()), paid=by_status[Status.PAID]),
        failures=[(reason or "unknown", n) for reason, n in ranked[:failure_limit]],
        summary=mark,
    )


def revenue_per_day(*, account_id: int | None, mode: str, window: DashboardWindow) -> dict[str, list[tuple[date, Decimal, int]]]:
    """Paid revenue per currency and UTC day, every day of the window present (zero when nothing was paid)."""
    return dashboard_figures(account_id=account_id, mode=mode, window=window).revenue


def sessions_by_status(*, account_id: int | None, mode: str, window: DashboardWindow) -> dict[str, int]:
    """Sessions created in the window, counted by their current status (every status present)."""
    return dashboard_figures(account_id=account_id, mode=mode, window=window).by_status


def conversion(*, account_id: int | None, mode: str, window: DashboardWindow) -> Conversion:
    """Of the sessions created in the window, how many are paid."""
    return dashboard_figures(account_id=account_id, mode=mode, window=window).conversion


def top_failure_reasons(*, account_id: int | None, mode: str, window: DashboardWindow, limit: int = 5) -> list[tuple[str, int]]:
    return dashboard_figures(account_id=account_id, mode=mode, window=window, failure_limit=limit).failures
