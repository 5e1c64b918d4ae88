"""The daily summary the dashboard reads instead of the sessions: kept by a job, not by the payment.

The payment's own statement (one_statement.py) stays as it is: a job recomputes the days that
may still change, from the sessions themselves, and moves two watermarks forward:

- `paid_until` (now minus `PAID_MARGIN`): payments and failures up to it are summarised. The
  margin covers a transaction that wrote its paid_at a moment before it committed.
- `created_until` (now minus `CREATED_MARGIN`): sessions made before it have ended (a session
  lives 24 h at most, and the expiry sweep runs every minute), so their status no longer moves.

Each run recomputes whole days, from the day of the older watermark (or of the oldest day still
showing open sessions) to today, inside one transaction that holds the watermark row: running it
twice, or two workers at once, gives the same rows. Readers (selectors) add what is newer than the
watermarks from the sessions, so the figures are exact whatever the job's lag; the lag only
decides how many recent rows a page reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from sessions_app.models import DailyFailureReason, DailySummary, PaymentSession, Status, SummaryWatermark
from sessions_app.refunds.models import Refund, RefundStatus

PAID_MARGIN = timedelta(minutes=5)
CREATED_MARGIN = timedelta(hours=26)
# A session fails while it is open (24 h at most); failures are looked for among sessions made
# this long before the first day recomputed, so the job reads recent rows only.
FAILURE_LOOK_BACK = timedelta(days=2)
WATERMARK_PK = 1
# The watermark of a summary never built: every day is computed.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def paid_figures(sessions: QuerySet[PaymentSession]) -> QuerySet:
    """count and gross of paid sessions, per account, mode, currency and paid day."""
    return (sessions.filter(status=Status.PAID)
            .annotate(day=TruncDate("paid_at", tzinfo=UTC))
            .values("account_id", "mode", "currency", "day")
            .annotate(count=Count("id"), gross=Sum("amount"))
            .order_by())


def refund_figures(refunds: QuerySet[Refund]) -> QuerySet:
    """Money given back, per account, mode, currency and the day the refund succeeded.

    A refund counts on its own day, as a payout does on a statement: the day a payment was made
    keeps its gross, and the days already summed never change after the fact. net = gross -
    refunded, per day.
    """
    return (refunds.filter(status=RefundStatus.SUCCEEDED)
            .annotate(day=TruncDate("succeeded_at", tzinfo=UTC))
            .values("account_id", "mode", "currency", "day")
            .annotate(refunded=Sum("amount"))
            .order_by())


def created_figures(sessions: QuerySet[PaymentSession]) -> QuerySet:
    """Sessions per account, mode, currency and day made, by their status now."""
    return (sessions.annotate(day=TruncDate("created_at", tzinfo=UTC))
            .values("account_id", "mode", "currency", "day")
            .annotate(sessions_created=Count("id", filter=Q(status=Status.CREATED)),
                      sessions_pending=Count("id", filter=Q(status=Status.PENDING)),
                      sessions_paid=Count("id", filter=Q(status=Status.PAID)),
                      sessions_failed=Count("id", filter=Q(status=Status.FAILED)))
            .order_by())


def failure_figures(sessions: QuerySet[PaymentSession]) -> QuerySet:
    return (sessions.filter(status=Status.FAILED)
            .annotate(day=TruncDate("failed_at", tzinfo=UTC))
            .values("account_id", "mode", "day", "failure_reason").annotate(count=Count("id")).order_by())


@dataclass(frozen=True)
class SummaryRun:
    paid_until: datetime
    created_until: datetime
    rows: int


def summary_refresh(*, now: datetime | None = None) -> SummaryRun:
    """Bring the summary up to now minus the margins. Idempotent; safe to run concurrently."""
    now = now or timezone.now()
    paid_until, created_until = now - PAID_MARGIN, now - CREATED_MARGIN
    with transaction.atomic():
        # The row is made once and locked by every run: two runs at once take turns.
        mark, _ = SummaryWatermark.objects.select_for_update().get_or_create(
            pk=WATERMARK_PK, defaults={"paid_until": NEVER, "created_until": NEVER, "refreshed_at": NEVER})
        if mark.paid_until >= paid_until:
            return SummaryRun(mark.paid_until, mark.created_until, 0)  # a later run got here first
        first_day = _first_day_to_recompute(mark)
        start = day_start(first_day) if first_day else None
        if start is None:
            DailySummary.objects.all().delete()
            DailyFailureReason.objects.all().delete()
        else:
            DailySummary.objects.filter(day__gte=first_day).delete()
            DailyFailureReason.objects.filter(day__gte=first_day).delete()
        rows = _write_days(start=start, paid_until=paid_until, created_until=created_until)
        mark.paid_until, mark.created_until, mark.refreshed_at = paid_until, created_until, now
        mark.save(update_fields=["paid_until", "created_until", "refreshed_at"])
    return SummaryRun(paid_until, created_until, rows)


def summary_rebuild(*, now: datetime | None = None) -> SummaryRun:
    """Forget the summary and build it again from every session (after a repair, or to check it)."""
    with transaction.atomic():
        SummaryWatermark.objects.filter(pk=WATERMARK_PK).update(paid_until=NEVER, created_until=NEVER)
        return summary_refresh(now=now)


def _first_day_to_recompute(mark: SummaryWatermark) -> date | None:
    """The first day that may have changed since the last run: None means every day."""
    if mark.paid_until <= NEVER:
        return None
    first = min(mark.paid_until, mark.created_until).astimezone(UTC).date()
    # A day that still shows open sessions (the expiry sweep was down) is looked at again.
    still_open = (DailySummary.objects.filter(day__lt=first).filter(Q(sessions_created__gt=0) | Q(sessions_pending__gt=0))
                  .order_by("day").values_list("day", flat=True).first())
    return min(first, still_open) if still_open else first


def _write_days(*, start: datetime | None, paid_until: datetime, created_until: datetime) -> int:
    sessions = PaymentSession.objects.all()
    paid = sessions.filter(paid_at__lt=paid_until)
    made = sessions.filter(created_at__lt=created_until)
    failed = sessions.filter(failed_at__lt=paid_until)
    refunded = Refund.objects.filter(succeeded_at__lt=paid_until)
    if start is not None:
        paid = paid.filter(paid_at__gte=start)
        refunded = refunded.filter(succeeded_at__gte=start)
        made = made.filter(created_at__gte=start)
        failed = failed.filter(failed_at__gte=start, created_at__gte=start - FAILURE_LOOK_BACK)

    days: dict[tuple, DailySummary] = {}

    def row(r: dict) -> DailySummary:
        key = (r["account_id"], r["mode"], r["day"], r["currency"])
        if key not in days:
            days[key] = DailySummary(account_id=key[0], mode=key[1], day=key[2], currency=key[3])
        return days[key]

    for r in paid_figures(paid).iterator(chunk_size=5000):
        summary = row(r)
        summary.count, summary.gross = r["count"], r["gross"]
    for r in refund_figures(refunded).iterator(chunk_size=5000):
        row(r).refunded = r["refunded"]
    for summary in days.values():
        summary.net = summary.gross - summary.refunded
    for r in created_figures(made).iterator(chunk_size=5000):
        summary = row(r)
        summary.sessions_created, summary.sessions_pending = r["sessions_created"], r["sessions_pending"]
        summary.sessions_paid, summary.sessions_failed = r["sessions_paid"], r["sessions_failed"]
    DailySummary.objects.bulk_create(days.values(), batch_size=2000)
    reasons = [DailyFailureReason(account_id=r["account_id"], mode=r["mode"], day=r["day"], reason=r["failure_reason"],
                                  count=r["count"]) for r in failure_figures(failed).iterator(chunk_size=5000)]
    DailyFailureReason.objects.bulk_create(reasons, batch_size=2000)
    return len(days) + len(reasons)

