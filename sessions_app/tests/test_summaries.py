"""The daily summary: rebuilt from the raw sessions it must equal them, refreshed it stays equal, and
the dashboard's figures (summary plus the newest sessions) equal the figures counted row by row."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from sessions_app import figures, summaries
from sessions_app.models import DailyFailureReason, DailySummary, PaymentSession, Refund, SummaryWatermark
from sessions_app.summaries import summary_rebuild, summary_refresh
from sessions_app.tests.conftest import stripe_event

REASONS = ("card_declined", "expired", "insufficient_funds", "")


def _make(account, *, created, status, mode="test", currency="EUR", amount="10.00", settle=timedelta(minutes=3),
          reason="card_declined") -> PaymentSession:
    ended = created + settle
    return PaymentSession.objects.create(
        account=account, amount=Decimal(amount), currency=currency, mode=mode, status=status, created_at=created,
        expires_at=created + timedelta(hours=24), paid_at=ended if status == "paid" else None,
        failed_at=ended if status == "failed" else None, failure_reason=reason if status == "failed" else "")


def _history(accounts, now, n=400, seed=7):
    """Sessions of two merchants over 45 days, both modes, three currencies, every status; the
    newest ones inside the job's margins (made or paid in the last minutes and hours)."""
    rnd = random.Random(seed)
    for i in range(n):
        age = timedelta(minutes=rnd.randrange(0, 45 * 24 * 60)) if i % 4 else timedelta(minutes=rnd.randrange(0, 30 * 60))
        status = rnd.choice(("paid", "paid", "paid", "failed", "created", "pending"))
        if age > timedelta(hours=30) and status in ("created", "pending"):
            status = "failed"  # the sweep ended it
        _make(rnd.choice(accounts), created=now - age, status=status, mode=rnd.choice(("test", "live")),
              currency=rnd.choice(("EUR", "USD", "JPY")), amount=f"{rnd.randrange(100, 99999) / 100:.2f}",
              settle=timedelta(seconds=rnd.randrange(0, 3 * 3600)), reason=rnd.choice(REASONS))


def _refund_some(now, seed=11):
    """Refunds of about a third of the paid sessions: succeeded (some on a later day than the
    payment, some inside the job's margin), failed and pending ones that must not count."""
    rnd = random.Random(seed)
    for session in PaymentSession.objects.filter(status="paid").order_by("id"):
        if rnd.random() > 0.35:
            continue
        status = rnd.choice(("succeeded", "succeeded", "succeeded", "failed", "pending"))
        at = min(session.paid_at + timedelta(minutes=rnd.randrange(1, 3 * 24 * 60)), now)
        Refund.objects.create(session=session, account_id=session.account_id, mode=session.mode,
                              currency=session.currency, amount=(session.amount / 2).quantize(Decimal("0.01")),
                              status=status, created_at=at, succeeded_at=at if status == "succeeded" else None)


def _succeeded_refunds():
    return Refund.objects.filter(status="succeeded")


def _expected_rows(now):
    """The summary's rows, computed in Python from every session and the watermarks."""
    paid_until, created_until = now - summaries.PAID_MARGIN, now - summaries.CREATED_MARGIN
    days = defaultdict(lambda: {"count": 0, "gross": Decimal("0"), "refunded": Decimal("0"), "created": 0,
                                "pending": 0, "paid": 0, "failed": 0})
    reasons = Counter()
    for s in PaymentSession.objects.all():
        if s.status == "paid" and s.paid_at < paid_until:
            row = days[(s.account_id, s.mode, s.paid_at.astimezone(UTC).date(), s.currency)]
            row["count"] += 1
            row["gross"] += s.amount
        if s.created_at < created_until:
            days[(s.account_id, s.mode, s.created_at.astimezone(UTC).date(), s.currency)][s.status] += 1
        if s.status == "failed" and s.failed_at < paid_until:
            reasons[(s.account_id, s.mode, s.failed_at.astimezone(UTC).date(), s.failure_reason)] += 1
    for r in _succeeded_refunds():
        if r.succeeded_at < paid_until:
            days[(r.account_id, r.mode, r.succeeded_at.astimezone(UTC).date(), r.currency)]["refunded"] += r.amount
    return dict(days), dict(reasons)


def _stored_rows():
    days = {(r.account_id, r.mode, r.day, r.currency): {
        "count": r.count, "gross": r.gross, "refunded": r.refunded, "created": r.sessions_created,
        "pending": r.sessions_pending, "paid": r.sessions_paid, "failed": r.sessions_failed}
        for r in DailySummary.objects.all()}
    reasons = {(r.account_id, r.mode, r.day, r.reason): r.count for r in DailyFailureReason.objects.all()}
    for r in DailySummary.objects.all():
        assert r.net == r.gross - r.refunded
    return days, reasons


def _raw_figures(account_id, mode, window):
    """The dashboard's figures counted from every session, as the page did before the summary."""
    revenue, by_status, failures = defaultdict(Counter), Counter({s: 0 for s in ("created", "pending", "paid", "failed")}), Counter()
    amounts = defaultdict(lambda: defaultdict(Decimal))
    for s in PaymentSession.objects.filter(mode=mode):
        if account_id is not None and s.account_id != account_id:
            continue
        if s.status == "paid" and window.start <= s.paid_at <= window.end:
            day = s.paid_at.astimezone(UTC).date()
            revenue[s.currency][day] += 1
            amounts[s.currency][day] += s.amount
        if window.start <= s.created_at <= window.end:
            by_status[s.status] += 1
        if s.status == "failed" and window.start <= s.failed_at <= window.end:
            failures[s.failure_reason or "unknown"] += 1
    for r in _succeeded_refunds().filter(mode=mode):
        if (account_id is None or r.account_id == account_id) and window.start <= r.succeeded_at <= window.end:
            amounts[r.currency][r.succeeded_at.astimezone(UTC).date()] -= r.amount
    revenue_days = {c: [(d, amounts[c][d], revenue[c][d]) for d in window.days]
                    for c in sorted(set(revenue) | {c for c, by_day in amounts.items() if any(by_day.values())})}
    return revenue_days, dict(by_status), failures


def _assert_figures_match(accounts, now):
    window = figures.dashboard_window(now=now)
    for account_id in (*[a.pk for a in accounts], None):
        for mode in ("test", "live"):
            found = figures.dashboard_figures(account_id=account_id, mode=mode, window=window, failure_limit=10)
            revenue, by_status, failures = _raw_figures(account_id, mode, window)
            assert found.revenue == revenue, (account_id, mode)
            assert found.by_status == by_status, (account_id, mode)
            assert dict(found.failures) == dict(failures), (account_id, mode)
            assert found.conversion.created == sum(by_status.values())


def test_a_rebuild_from_the_raw_sessions_equals_them(merchant, other_merchant):
    now = timezone.now()
    _history([merchant, other_merchant], now)
    _refund_some(now)
    assert _succeeded_refunds().exists()

    run = summary_rebuild(now=now)

    assert run.rows > 0
    assert _stored_rows() == _expected_rows(now)
    _assert_figures_match([merchant, other_merchant], now)


def test_refreshes_move_forward_and_equal_a_rebuild(merchant, other_merchant):
    start = timezone.now() - timedelta(days=2)
    _history([merchant, other_merchant], start, n=250, seed=11)
    summary_refresh(now=start)

    # when the sessions then move on: open ones are paid or fail, new ones come, time passes
    rnd = random.Random(3)
    for s in PaymentSession.objects.filter(status__in=("created", "pending")):
        ended = s.created_at + timedelta(hours=rnd.randrange(1, 20))
        if rnd.random() < 0.5:
            PaymentSession.objects.filter(pk=s.pk).update(status="paid", paid_at=ended)
        else:
            PaymentSession.objects.filter(pk=s.pk).update(status="failed", failed_at=ended, failure_reason="expired")
    for hours in range(0, 48, 3):
        _make(merchant, created=start + timedelta(hours=hours), status="paid", currency="USD")
    # and refunds succeed after the first run, for payments of days it already summed
    for i, s in enumerate(PaymentSession.objects.filter(status="paid", paid_at__lt=start).order_by("id")[:40]):
        at = start + timedelta(hours=1 + i)
        Refund.objects.create(session=s, account_id=s.account_id, mode=s.mode, currency=s.currency,
                              amount=Decimal("1.00"), status="succeeded", created_at=at, succeeded_at=at)
    checkpoints = [start + timedelta(hours=h) for h in (1, 7, 30, 49)]
    for when in checkpoints:
        summary_refresh(now=when)
        _assert_figures_match([merchant, other_merchant], when)
    incremental = _stored_rows()

    # then the summary equals one built from nothing at the same moment
    summary_rebuild(now=checkpoints[-1])
    assert _stored_rows() == incremental == _expected_rows(checkpoints[-1])


def test_a_refresh_twice_changes_nothing_and_an_older_one_is_a_no_op(merchant):
    now = timezone.now()
    _history([merchant], now, n=120)
    summary_refresh(now=now)
    first = _stored_rows()

    summary_refresh(now=now)
    summary_refresh(now=now - timedelta(hours=1))

    assert _stored_rows() == first
    assert SummaryWatermark.objects.get().paid_until == now - summaries.PAID_MARGIN


def test_a_day_left_open_by_a_stopped_sweep_is_recounted_once_it_ends(merchant):
    now = timezone.now()
    old = _make(merchant, created=now - timedelta(days=10), status="created")
    summary_refresh(now=now)
    assert DailySummary.objects.get().sessions_created == 1

    # when the sweep finally fails it, days after the watermarks moved past its day
    PaymentSession.objects.filter(pk=old.pk).update(status="failed", failed_at=now - timedelta(days=10),
                                                    failure_reason="expired")
    summary_refresh(now=now + timedelta(minutes=10))

    row = DailySummary.objects.get()
    assert (row.sessions_created, row.sessions_failed) == (0, 1)


def test_a_payment_through_the_webhook_reaches_the_summary(make_session, deliver, merchant):
    # given a session paid through the real webhook path (the payment's statement is not touched)
    session = make_session(amount="25.00")
    assert deliver(stripe_event(session)).status_code == 200
    session.refresh_from_db()
    assert session.status == "paid"
    window = figures.dashboard_window()

    # then before any summary it is counted from the sessions, and after a refresh from the summary
    assert figures.revenue_per_day(account_id=merchant.pk, mode="test", window=window)["EUR"][-1][1:] == (
        Decimal("25.000"), 1)
    summary_refresh(now=timezone.now() + timedelta(minutes=10))
    row = DailySummary.objects.get(account=merchant, currency="EUR", mode="test")
    assert (row.count, row.gross, row.refunded, row.net) == (1, Decimal("25.000"), 0, Decimal("25.000"))
    assert figures.revenue_per_day(account_id=merchant.pk, mode="test", window=window)["EUR"][-1][1:] == (
        Decimal("25.000"), 1)


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_refreshes_and_the_page_shows_the_lag(merchant, client):
    from keys_app.services import merchant_login_create
    from sessions_app.tasks import sessions_summary_refresh

    _make(merchant, created=timezone.now() - timedelta(days=3), status="paid")
    client.force_login(merchant_login_create(account=merchant).user)
    assert "has not been built yet" in client.get("/admin/?mode=test").content.decode()

    # The result is read, not waited for: a worker started in this process earlier (other tests)
    # makes Celery refuse .get() here.
    result = sessions_summary_refresh.apply()
    assert result.successful(), result.traceback

    html = client.get("/admin/?mode=test").content.decode()
    assert 'data-testid="summary-lag"' in html and "Daily summary up to" in html
    assert DailySummary.objects.filter(account=merchant, count=1).exists()
