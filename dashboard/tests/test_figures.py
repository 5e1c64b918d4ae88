from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dashboard.tests.conftest import make_session
from sessions_app import figures
from sessions_app.models import PaymentSession

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def window():
    return figures.dashboard_window(now=NOW)


@pytest.fixture
def ledger(merchant, other_merchant):
    """Known sessions: two days of EUR, one of USD, live and test, plus another merchant's."""
    day1 = NOW - timedelta(days=2)
    day2 = NOW - timedelta(hours=1)
    make_session(merchant, amount="10.50", status="paid", when=day1)
    make_session(merchant, amount="4.50", status="paid", when=day1)
    make_session(merchant, amount="7.25", status="paid", when=day2)
    make_session(merchant, amount="100", currency="USD", status="paid", when=day2)
    make_session(merchant, amount="999", status="paid", mode="live", when=day2)
    make_session(merchant, amount="5", status="failed", failure_reason="card_declined", when=day1)
    make_session(merchant, amount="5", status="failed", failure_reason="card_declined", when=day2)
    make_session(merchant, amount="5", status="failed", failure_reason="expired", when=day2)
    make_session(merchant, amount="5", status="created", when=day2)
    make_session(merchant, amount="5", status="pending", when=day2)
    # outside the window: 40 days ago
    make_session(merchant, amount="1000", status="paid", when=NOW - timedelta(days=40))
    make_session(other_merchant, amount="500", status="paid", when=day2)


def test_it_sums_paid_revenue_per_day_and_currency(merchant, ledger, window):
    revenue = figures.revenue_per_day(account_id=merchant.pk, mode="test", window=window)

    assert set(revenue) == {"EUR", "USD"}
    eur = {d: (amount, n) for d, amount, n in revenue["EUR"]}
    assert len(revenue["EUR"]) == 30
    assert eur[(NOW - timedelta(days=2)).date()] == (Decimal("15.00"), 2)
    assert eur[NOW.date()] == (Decimal("7.25"), 1)
    assert sum(amount for amount, _ in eur.values()) == Decimal("22.25")
    assert sum(amount for _, amount, _ in revenue["USD"]) == Decimal("100")


def test_the_live_switch_shows_only_live_revenue(merchant, ledger, window):
    live = figures.revenue_per_day(account_id=merchant.pk, mode="live", window=window)

    assert list(live) == ["EUR"]
    assert sum(amount for _, amount, _ in live["EUR"]) == Decimal("999")


def test_all_merchants_add_up_for_staff(merchant, ledger, window):
    revenue = figures.revenue_per_day(account_id=None, mode="test", window=window)

    assert sum(amount for _, amount, _ in revenue["EUR"]) == Decimal("522.25")


def test_it_counts_sessions_by_status_conversion_and_failure_reasons(merchant, ledger, window):
    assert figures.sessions_by_status(account_id=merchant.pk, mode="test", window=window) == {
        "created": 1, "pending": 1, "paid": 4, "failed": 3}
    conv = figures.conversion(account_id=merchant.pk, mode="test", window=window)
    assert (conv.paid, conv.created, conv.rate) == (4, 9, Decimal("44.4"))
    assert figures.top_failure_reasons(account_id=merchant.pk, mode="test", window=window) == [
        ("card_declined", 2), ("expired", 1)]


def test_the_dashboard_page_shows_the_figures_as_charts_and_a_table(merchant_client, merchant):
    # given paid sessions of today
    make_session(merchant, amount="12.00", status="paid")
    make_session(merchant, amount="8.00", status="paid")
    make_session(merchant, amount="3.00", currency="USD", status="paid")

    # when the merchant opens the dashboard on test data
    html = merchant_client.get("/admin/?mode=test").content.decode()

    # then both currencies are drawn and tabled with their sums
    assert 'data-testid="revenue-EUR"' in html and 'data-testid="revenue-USD"' in html
    assert f'data-label="{timezone.now().date().isoformat()}" data-value="20.00"' in html
    assert 'data-testid="total-EUR">20.00<' in html
    assert 'data-testid="total-USD">3.00<' in html
    assert 'data-testid="status-paid">3<' in html
    assert "<script" not in html.split('id="content-main"')[1].split("</svg>")[0]


def test_the_dashboard_shows_live_figures_by_default_and_test_ones_on_request(merchant_client, merchant):
    # given a live payment and a test payment of today
    make_session(merchant, amount="30.00", status="paid", mode="live")
    make_session(merchant, amount="4.00", status="paid", mode="test")

    # then the dashboard opens on live figures only, even before the merchant has a live key
    html = merchant_client.get("/admin/").content.decode()
    assert 'data-mode="live"' in html
    assert 'data-testid="total-EUR">30.00<' in html
    # and shows the test figures only when asked
    html = merchant_client.get("/admin/?mode=test").content.decode()
    assert 'data-mode="test"' in html and "Viewing test data" in html
    assert 'data-testid="total-EUR">4.00<' in html


def _seed(merchant, rows: int) -> None:
    now = timezone.now()
    PaymentSession.objects.bulk_create([
        PaymentSession(account=merchant, amount=Decimal("1.00"), currency=("EUR", "USD", "GBP")[i % 3],
                       mode="test", status=("paid", "failed", "created")[i % 3], created_at=now - timedelta(days=i % 30),
                       paid_at=now - timedelta(days=i % 30), failed_at=now - timedelta(days=i % 30),
                       failure_reason=f"reason{i % 7}", expires_at=now)
        for i in range(rows)
    ])


def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", ["/admin/?mode=test", "/admin/sessions_app/paymentsession/"])
def test_a_page_costs_the_same_queries_for_few_rows_and_many(merchant_client, merchant, other_merchant, url,
                                                            django_assert_max_num_queries):
    # given a few sessions
    _seed(merchant, 3)
    few = _queries(merchant_client, url)

    # when there are a hundred times as many, over 30 days and three currencies
    _seed(merchant, 300)
    _seed(other_merchant, 300)

    # then the page makes exactly as many queries, and few of them
    # (dashboard: session, user, account, the summary's watermark, two summary reads and three
    # reads of the newest sessions, the export's size, the app list's two permission reads)
    assert _queries(merchant_client, url) == few
    with django_assert_max_num_queries(13):
        merchant_client.get(url)
