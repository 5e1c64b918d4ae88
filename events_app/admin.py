"""Webhooks in the dashboard: endpoints with their state, the delivery log, redelivery, test, re-enable."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from core import errors
from core.admin_scoping import MerchantScopedAdmin, ScopedValuesFilter
from events_app import selectors, services
from events_app.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _log_link(object_id: str) -> str:
    """The delivery log of one endpoint or one event (its search finds both ids)."""
    return format_html('<a href="{}?q={}">deliveries</a>', reverse("admin:events_app_delivery_changelist"), object_id)


class StatusClassFilter(admin.SimpleListFilter):
    title = "answer"
    parameter_name = "answer"

    def lookups(self, request, model_admin):
        return [("2xx", "2xx"), ("3xx", "3xx"), ("4xx", "4xx"), ("5xx", "5xx"), ("none", "no answer")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(last_status_code__isnull=True).exclude(attempts=0)
        if value and value[0] in "2345":
            low = int(value[0]) * 100
            return queryset.filter(last_status_code__gte=low, last_status_code__lt=low + 100)
        return queryset


class DeliveryEventTypeFilter(ScopedValuesFilter):
    title = "event type"
    parameter_name = "event_type"
    field = "event__type"


class EventTypeFilter(ScopedValuesFilter):
    title = "type"
    parameter_name = "type"
    field = "type"


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(MerchantScopedAdmin):
    list_display = ("id", "url", "mode", "enabled", "consecutive_failures", "last_delivery", "log", "created_at")
    staff_list_display = ("account",)
    list_filter = ("mode", "enabled")
    staff_list_filter = ("account",)
    search_fields = ("id", "url", "description")
    readonly_fields = ("id", "account", "mode", "url", "description", "event_types", "enabled", "disabled_reason",
                       "disabled_at", "consecutive_failures", "failing_since", "warned_at",
                       "previous_secret_expires_at", "created_at", "updated_at")
    fields = readonly_fields  # never the sealed secrets
    actions = ("send_test_event", "reenable")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.endpoints_with_last_delivery_summary(super().get_queryset(request))

    @admin.display(description="last delivery")
    def last_delivery(self, obj: WebhookEndpoint) -> str:
        if obj.last_delivery_status is None:
            return "-"
        return f"{obj.last_delivery_status} ({obj.last_delivery_status_code or obj.last_delivery_error[:40] or '-'})"

    @admin.display(description="delivery log")
    def log(self, obj: WebhookEndpoint) -> str:
        return _log_link(obj.pk)

    @admin.action(description="Send test event")
    def send_test_event(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset:
            services.endpoint_send_test(endpoint=endpoint, actor=_actor(request))
        self.message_user(request, f"A ping is on its way to {queryset.count()} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Re-enable")
    def reenable(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset.filter(enabled=False):
            services.endpoint_reenable(endpoint=endpoint, actor=_actor(request))
        self.message_user(request, "Re-enabled.", messages.SUCCESS)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("started_at", "status_code", "duration_ms", "error", "response_body", "redelivery")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return True


def _redeliver(admin_view: MerchantScopedAdmin, request: HttpRequest, deliveries) -> None:
    sent = 0
    for delivery in deliveries:
        try:
            services.delivery_redeliver(delivery=delivery, actor=_actor(request))
            sent += 1
        except errors.DomainError as exc:
            admin_view.message_user(request, f"{delivery}: {exc.message}", messages.WARNING)
    if sent:
        admin_view.message_user(request, f"{sent} delivery(ies) sent again (same webhook-id).", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(MerchantScopedAdmin):
    account_field = "endpoint__account_id"
    list_display = ("event", "event_type", "endpoint", "status", "attempts", "last_status_code", "created_at",
                    "finished_at")
    list_filter = ("status", StatusClassFilter, DeliveryEventTypeFilter)
    search_fields = ("event__id", "endpoint__id", "endpoint__url")
    search_help_text = "An event id (evt_…) or endpoint id (we_…) or URL"
    list_select_related = ("event", "endpoint")
    readonly_fields = ("event", "endpoint", "status", "attempts", "next_attempt_at", "last_status_code",
                       "last_error", "created_at", "finished_at")
    fields = readonly_fields
    inlines = (AttemptInline,)
    actions = ("redeliver",)

    @admin.display(description="event type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    @admin.action(description="Redeliver")
    def redeliver(self, request: HttpRequest, queryset: QuerySet) -> None:
        _redeliver(self, request, queryset.select_related("endpoint"))


@admin.register(Event)
class EventAdmin(MerchantScopedAdmin):
    list_display = ("id", "type", "mode", "object_id", "deliveries", "created_at")
    staff_list_display = ("account",)
    list_filter = ("mode", EventTypeFilter)
    staff_list_filter = ("account",)
    search_fields = ("id", "object_id")
    readonly_fields = ("id", "account", "mode", "type", "object_id", "data", "created_at")
    fields = readonly_fields
    actions = ("redeliver",)

    @admin.display(description="deliveries")
    def deliveries(self, obj: Event) -> str:
        return _log_link(obj.pk)

    @admin.action(description="Redeliver")
    def redeliver(self, request: HttpRequest, queryset: QuerySet) -> None:
        sent = 0
        for event in queryset:
            sent += services.event_redeliver(event=event, actor=_actor(request))
        self.message_user(request, f"Sent again to {sent} endpoint(s) (same webhook-id).", messages.SUCCESS)
