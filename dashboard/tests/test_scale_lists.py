"""Lists, search and exports that cost the same at a million sessions: estimated counts, indexed
search, and the CSV that PostgreSQL writes (which must equal the one Python writes)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from core.admin_scoping import EstimatedCountPaginator
from core.formatting import amount_text
from dashboard import views
from dashboard.tests.conftest import make_session
from sessions_app import selectors
from sessions_app.models import PaymentSession

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans and COPY")

HOSTILE = ("=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "a,b", 'say "hi"', "two\nlines",
           "", "Ünïcødé", "  spaced ")


def _parse(body: bytes | str) -> list[list[str]]:
    text = body.decode() if isinstance(body, bytes) else body
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def awkward_sessions(merchant, other_merchant):
    """Paid sessions whose cells are hard to write: formulas, quotes, new lines, empty fields,
    currencies of 0, 2 and 3 decimals, whole-second and fractional times."""
    base = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
    # At each currency's precision, as create_session accepts them.
    amounts = {"EUR": ("1.00", "1.05", "12.50", "0.01", "999999.99"), "JPY": ("1500", "2", "3"),
               "KWD": ("1.234", "0.500", "10")}
    i = 0
    for currency, values in amounts.items():
        for amount in values:
            text = HOSTILE[i % len(HOSTILE)]
            make_session(merchant, amount=amount, currency=currency, status="paid",
                         when=base + timedelta(days=i, microseconds=0 if i % 2 else 123456),
                         mode="live" if i % 3 == 0 else "test", customer_email=f"b{i}@shop.test",
                         customer_name=text, description=HOSTILE[(i + 3) % len(HOSTILE)],
                         client_reference_id=HOSTILE[(i + 5) % len(HOSTILE)], provider_reference=f"pi_{i}")
            i += 1
    make_session(merchant, status="failed", when=base)
    make_session(other_merchant, status="paid", when=base)
    return base


def _python_export(account_id, **scope) -> list[list[str]]:
    rows = selectors.paid_sessions_for_export(account_id=account_id, **scope)
    rows = ((r[0], r[1], amount_text(r[2], r[3]), *r[3:]) for r in rows)
    return _parse("".join(views.stream_csv(selectors.PAID_EXPORT_COLUMNS, rows)))


@pytest.mark.parametrize("query, scope", [
    ("", {}),
    ("?mode=live", {"mode": "live"}),
    ("?from=2026-03-16&to=2026-03-19", {"start": datetime(2026, 3, 16).date(), "end": datetime(2026, 3, 19).date()}),
])
def test_the_streamed_export_equals_the_rows_written_one_by_one(merchant_client, merchant, awkward_sessions,
                                                                 query, scope):
    response = merchant_client.get(f"/admin/export/paid-sessions.csv{query}")

    streamed = _parse(b"".join(response.streaming_content))
    assert streamed == _python_export(merchant.pk, **scope)
    assert streamed[0] == list(selectors.PAID_EXPORT_COLUMNS)
    assert "mode" in streamed[0]
    assert len(streamed) > 1
    by_name = {r[8]: r for r in streamed[1:]}
    assert by_name.get("'=HYPERLINK(\"http://x\")", ["'=HYPERLINK(\"http://x\")"] * 9)[8].startswith("'")


def test_the_export_takes_a_date_range_and_refuses_a_bad_one(merchant_client, awkward_sessions):
    rows = _parse(b"".join(merchant_client.get("/admin/export/paid-sessions.csv?from=2026-03-15&to=2026-03-15")
                           .streaming_content))
    assert [r[1][:10] for r in rows[1:]] == ["2026-03-15"]

    response = merchant_client.get("/admin/export/paid-sessions.csv?from=15.03.2026")
    assert response.status_code == 400
    assert b"date_invalid" in response.content
    assert merchant_client.get("/admin/export/invoices.csv?to=yesterday").status_code == 400


def test_the_export_carries_a_size_hint_from_the_summary(merchant_client, merchant, awkward_sessions):
    from sessions_app.summaries import summary_refresh

    summary_refresh(now=timezone.now())

    response = merchant_client.get("/admin/export/paid-sessions.csv")
    assert response["X-Export-Rows"] == str(PaymentSession.objects.filter(account=merchant, status="paid").count())
    html = merchant_client.get("/admin/?mode=test").content.decode()
    assert 'data-testid="export-size"' in html and 'data-testid="export-range"' in html


def test_search_finds_by_exact_id_and_references_and_by_part_of_the_email(merchant_client, merchant, other_merchant):
    wanted = make_session(merchant, status="paid", customer_email="Jane.Doe@Example.org", client_reference_id="order-77",
                          provider_reference="pi_3Nabc")
    make_session(merchant, status="paid", customer_email="someone@else.test", client_reference_id="order-777")
    make_session(other_merchant, status="paid", customer_email="jane.doe@example.org", client_reference_id="order-77")
    url = "/admin/sessions_app/paymentsession/?q="

    for term in (str(wanted.pk), "order-77", "pi_3Nabc", "jane.doe", "DOE@example", "jane.doe@example.org"):
        html = merchant_client.get(url + term).content.decode()
        assert str(wanted.pk) in html, term
        assert html.count('class="action-select"') == 1, term
    # a reference is matched whole, and two letters of an email are too few to search
    assert "order-777" not in merchant_client.get(url + "order-7").content.decode()
    assert 'class="action-select"' not in merchant_client.get(url + "ja").content.decode()
    assert "trigram index" in merchant_client.get(url).content.decode()


def _plan(qs) -> str:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sessions_app_paymentsession")
        # Thousands of rows still fit in a few pages, which PostgreSQL rightly reads whole; with
        # that forbidden, the plan shows which index answers (bench/scale.py shows it at 1M rows).
        cursor.execute("SET LOCAL enable_seqscan = off")
        return qs.explain()


NAMES, DOMAINS = ("anna", "bob", "chen", "dara"), ("mail.test", "shop.example", "corp.test")


@pytest.fixture
def many_sessions(merchant):
    """Enough of the merchant's sessions that reading them all is the plan to avoid."""
    now = timezone.now()
    PaymentSession.objects.bulk_create([
        PaymentSession(account=merchant, amount=Decimal("1.00"), currency="EUR", mode="test", status="paid",
                       created_at=now - timedelta(minutes=i), expires_at=now, paid_at=now,
                       customer_email=f"c{i:05d}.{NAMES[i % 4]}@{DOMAINS[i % 3]}", client_reference_id=f"order-{i}",
                       provider_reference=f"pi_{i:08d}") for i in range(5000)])


@on_postgresql
@pytest.mark.parametrize("term, index", [
    ("00123.bob", "session_email_trgm_idx"),
    # Under 3 characters, so the email's branch stays out: on a table this small the planner
    # would otherwise read the merchant's own index whole (at 1M rows it takes this one).
    ("o7", "session_client_ref_idx"),
    ("pi_00000077", "session_provider_ref_idx"),
])
def test_search_is_served_by_an_index(merchant, many_sessions, term, index):
    # On a table this small the merchant's own index is as cheap as any, so the plan is asked
    # for the search alone, over every merchant (bench/scale.py shows the merchant's at 1M rows).
    sessions = PaymentSession.objects.all() if index != "session_client_ref_idx" else merchant.sessions.all()
    plan = _plan(selectors.session_search(sessions, term))

    assert index in plan
    assert "Seq Scan" not in plan


@on_postgresql
def test_the_session_list_is_served_in_order_by_the_account_index(merchant, many_sessions):
    plan = _plan(PaymentSession.objects.filter(account=merchant).order_by("-created_at", "-pk")[:50])

    assert "Seq Scan" not in plan and "Index Scan using sessions_ap_account_" in plan, plan


def test_invoice_search_uses_exact_number_reference_and_email_prefix(merchant):
    from invoices_app.models import Invoice
    from invoices_app.selectors import invoice_search

    qs = Invoice.objects.all()
    assert 'LIKE' in str(invoice_search(qs, "jane@").query).upper()
    assert str(invoice_search(qs, str(uuid.uuid4())).query).count("session_id") >= 1


def test_a_long_list_shows_an_estimate_and_a_short_one_an_exact_count(merchant_client, merchant, monkeypatch):
    now = timezone.now()
    PaymentSession.objects.bulk_create([
        PaymentSession(account=merchant, amount=Decimal("1.00"), currency="EUR", mode="test", created_at=now,
                       expires_at=now) for _ in range(30)])
    url = "/admin/sessions_app/paymentsession/"
    html = merchant_client.get(url).content.decode()
    assert "30 payment sessions" in html and "estimated-count" not in html

    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_LIMIT", 10)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE sessions_app_paymentsession")
    html = merchant_client.get(url).content.decode()
    if connection.vendor == "postgresql":
        assert 'data-testid="estimated-count"' in html
    else:
        assert "30 payment sessions" in html
