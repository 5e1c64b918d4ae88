from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from core import currencies
from core.admin_scoping import can_use_dashboard, is_staff_user, viewer_account_id
from dashboard import charts, views
from keys_app.models import Account, Mode
from sessions_app import figures, selectors


class PaymentsAdminSite(admin.AdminSite):
    site_header = "Payments dashboard"
    site_title = "Payments"
    index_title = "Revenue"
    index_template = "admin/dashboard/index.html"

    def has_permission(self, request: HttpRequest) -> bool:
        return can_use_dashboard(request.user)

    def get_urls(self):
        extra = [
            path("export/paid-sessions.csv", self.admin_view(views.paid_sessions_csv), name="export-paid-sessions"),
            path("export/invoices.csv", self.admin_view(views.invoices_csv), name="export-invoices"),
            path("export/refunds.csv", self.admin_view(views.refunds_csv), name="export-refunds"),
        ]
        return extra + super().get_urls()

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        context = {**dashboard_context(request), **(extra_context or {})}
        return super().index(request, extra_context=context)


def dashboard_context(request: HttpRequest) -> dict:
    account_id = viewer_account_id(request)
    # Live figures unless test ones are asked for: test payments never mix into the books.
    mode = request.GET.get("mode")
    mode = mode if mode in Mode.values else Mode.LIVE
    window = figures.dashboard_window()
    found = figures.dashboard_figures(account_id=account_id, mode=mode, window=window)
    revenue, by_status, conv, failures = found.revenue, found.by_status, found.conversion, found.failures

    revenue_charts = []
    for i, (currency, raw_days) in enumerate(revenue.items()):
        days = [(d, currencies.in_minor_units(amount, currency), n) for d, amount, n in raw_days]
        total = currencies.in_minor_units(sum((amount for _, amount, _ in days), Decimal("0")), currency)
        count = sum(n for _, _, n in days)
        revenue_charts.append({
            "currency": currency,
            "total": total,
            "count": count,
            "svg": charts.column_chart([(d.isoformat(), amount) for d, amount, _ in days],
                                       title=f"Paid revenue per day, {currency}",
                                       colour=charts.PALETTE[i % len(charts.PALETTE)],
                                       value_suffix=f" {currency}"),
            "rows": [(d, amount, n) for d, amount, n in days if n],
        })
    mark = found.summary
    return {
        "mode": mode,
        "summary_as_of": mark.paid_until if mark else None,
        "summary_lag_s": int((timezone.now() - mark.paid_until).total_seconds()) if mark else None,
        "export_rows": selectors.paid_count(account_id=account_id, mode=mode),
        "window": window,
        "revenue_charts": revenue_charts,
        "by_status": by_status,
        "status_svg": charts.bar_chart(list(by_status.items()), title="Sessions by status",
                                       colours=charts.STATUS_COLOURS),
        "conversion": conv,
        "conversion_svg": charts.gauge(conv.rate, title="Conversion (paid / created)"),
        "failures": failures,
        "failures_svg": charts.bar_chart(failures, title="Top failure reasons",
                                         colours={r: "#b42318" for r, _ in failures}),
        "account_filter": account_id if is_staff_user(request.user) else None,
        "is_staff_view": is_staff_user(request.user),
        "merchants": (list(Account.objects.order_by("name").values_list("pk", "name")[:500])
                      if is_staff_user(request.user) else []),
    }
