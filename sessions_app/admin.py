"""Dashboard pages for payment sessions and webhook deliveries: read-only, scoped per merchant."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from core.admin_scoping import MerchantScopedAdmin, ScopedValuesFilter, viewer_account_id
from core.formatting import money
from keys_app.selectors import entitlement_key_current_for_session
from sessions_app import figures, selectors
from sessions_app.links import admin as link_admin  # noqa: F401 - registers the payment links' pages
from sessions_app.models import PaymentSession, WebhookEvent
from sessions_app.refunds.admin import refund_session
from sessions_app.services import FulfilAnywayRefused, session_fulfil_anyway
from sessions_app.webhooks import webhook_event_reprocess_stored

# The providers the product speaks: a fixed list, so the filter costs no scan of the table.
PROVIDERS = ("stripe", "onecom", "web3")


class ProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(p, p) for p in PROVIDERS]

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset


class LatePaymentFilter(admin.SimpleListFilter):
    title = "paid after expiry"
    parameter_name = "late"

    def lookups(self, request, model_admin):
        return [("all", "Paid after expiry"), ("undecided", "Paid after expiry, not yet delivered")]

    def queryset(self, request, queryset):
        # Both read the partial index on late_payment_at: no scan of the merchant's history.
        if self.value() == "all":
            return queryset.filter(late_payment_at__isnull=False)
        if self.value() == "undecided":
            return queryset.filter(late_payment_at__isnull=False, fulfil_anyway_at__isnull=True)
        return queryset


class CurrencyFilter(ScopedValuesFilter):
    title = "currency"
    parameter_name = "currency"
    field = "currency"

    sample_rows = 500  # the summary knows the history; the sample covers the newest sessions

    def values(self, request, model_admin) -> list[str]:
        # Every currency of the merchant's history from the daily summary, and its newest sessions'.
        return sorted(set(super().values(request, model_admin))
                      | set(figures.summary_currencies(account_id=viewer_account_id(request))))


class EventTypeFilter(ScopedValuesFilter):
    title = "event type"
    parameter_name = "event_type"
    field = "event_type"


def _pretty_json(value) -> str:
    return format_html('<pre style="white-space:pre-wrap;max-width:900px">{}</pre>',
                       json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(PaymentSession)
class PaymentSessionAdmin(MerchantScopedAdmin):
    list_display = ("id", "amount_display", "mode", "status", "provider", "customer_email",
                    "client_reference_id", "created_at", "paid_at")
    staff_list_display = ("account",)
    list_filter = ("status", LatePaymentFilter, "mode", ProviderFilter, CurrencyFilter,
                   ("created_at", admin.DateFieldListFilter))
    staff_list_filter = ("account",)
    actions = ("fulfil_anyway", refund_session)
    search_fields = ("customer_email", "client_reference_id", "provider_reference")
    search_help_text = ("An exact session id, client reference or provider reference (indexed), or any part "
                        "of the customer's email, 3 characters or more (trigram index on PostgreSQL)")
    date_hierarchy = None
    list_select_related = ("account",)
    readonly_fields = ("id", "account", "status", "amount_display", "mode", "description", "customer_email",
                       "customer_name", "customer_address", "client_reference_id", "provider", "provider_reference",
                       "failure_reason", "created_at", "expires_at", "paid_at", "failed_at",
                       "payment_attempts_failed", "last_payment_error_code", "last_payment_error_message",
                       "late_payment_at", "fulfil_anyway_at", "fulfil_anyway_by", "amount_refunded",
                       "refund_status", "success_url",
                       "cancel_url", "providers", "metadata_pretty", "payment_link")
    fields = readonly_fields
    change_form_template = "admin/sessions_app/paymentsession/change_form.html"
    change_list_template = "admin/sessions_app/paymentsession/change_list.html"

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: PaymentSession) -> str:
        return money(obj.amount, obj.currency, grouped=False)

    @admin.display(description="metadata")
    def metadata_pretty(self, obj: PaymentSession) -> str:
        return _pretty_json(obj.metadata)

    def get_search_results(self, request, queryset, search_term):
        # Every branch reads an index: a pasted session id the primary key, a reference its own
        # index, a part of an email the trigram index. Nothing scans the merchant's history.
        return selectors.session_search(queryset, search_term), False

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        session = self.get_object(request, object_id)  # another merchant's session: 404
        extra_context = {
            **(extra_context or {}),
            **self.session_related(request, session),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def session_related(self, request: HttpRequest, session: PaymentSession) -> dict:
        """What the detail page shows beside the session's own fields."""
        # The reverse relation is read by name: sessions_app never imports fulfilment.
        invoice = getattr(session, "invoice", None)
        return {
            "invoice": invoice,
            "invoice_gross": money(invoice.gross, invoice.currency, grouped=False) if invoice else "",
            "timeline": list(selectors.session_timeline(session_id=session.pk)),
            "deliveries": list(session.webhook_events.order_by("received_at")),
            "buyer_key": entitlement_key_current_for_session(session_id=session.pk),
            "late_payments": list(selectors.late_payments_of(session=session)),
            "refunds": list(session.refunds.order_by("created_at")),
            **(selectors.test_delivery_shown(session=session) if session.mode == "test" else {}),
        }

    @admin.action(description="Fulfil anyway: deliver the selected sessions that were paid after expiry")
    def fulfil_anyway(self, request: HttpRequest, queryset) -> None:
        actor = f"admin:{request.user.get_username()}"
        decided, already, refused = 0, 0, 0
        for session_id in queryset.values_list("pk", flat=True):
            try:
                _, changed = session_fulfil_anyway(session_id=session_id, actor=actor)
            except FulfilAnywayRefused:
                refused += 1
                continue
            decided, already = decided + changed, already + (not changed)
        self.message_user(request, f"{decided} to be delivered, {already} already decided, "
                                   f"{refused} not paid after expiry (left as they were).",
                          messages.SUCCESS if decided else messages.WARNING)


@admin.register(WebhookEvent)
class WebhookEventAdmin(MerchantScopedAdmin):
    list_display = ("event_id", "provider", "event_type", "outcome", "error", "session_link", "received_at")
    staff_list_display = ("account",)
    list_filter = (ProviderFilter, "outcome", EventTypeFilter, ("received_at", admin.DateFieldListFilter))
    staff_list_filter = ("account",)
    search_fields = ("event_id", "event_type", "provider")
    list_select_related = ("account",)
    readonly_fields = ("provider", "event_id", "event_type", "outcome", "error", "session_link", "account",
                       "received_at", "processed_at", "payload_pretty")
    fields = readonly_fields
    actions = ("reprocess",)

    @admin.display(description="session")
    def session_link(self, obj: WebhookEvent) -> str:
        if not obj.session_id:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:sessions_app_paymentsession_change",
                                                          args=[obj.session_id]), obj.session_id)

    @admin.display(description="payload (as received)")
    def payload_pretty(self, obj: WebhookEvent) -> str:
        return _pretty_json(obj.payload)

    def get_search_results(self, request, queryset, search_term):
        session_id = selectors.parse_uuid(search_term.strip())
        if session_id is not None:
            return queryset.filter(session_id=session_id), False
        return super().get_search_results(request, queryset, search_term)

    @admin.action(description="Reprocess selected deliveries (only unmatched or failed ones change)")
    def reprocess(self, request: HttpRequest, queryset) -> None:
        actor = f"admin:{request.user.get_username()}"
        changed, unchanged = 0, 0
        for event in queryset:
            result = webhook_event_reprocess_stored(webhook_event=event, actor=actor)
            if result.outcome == "unchanged":
                unchanged += 1
            else:
                changed += 1
                self.message_user(request, f"{event.event_id}: {result.outcome} {result.detail}".strip(),
                                  messages.INFO)
        self.message_user(request, f"{changed} reprocessed, {unchanged} left as they were.", messages.SUCCESS)
