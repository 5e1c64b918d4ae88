"""The audit trail in the dashboard: read-only, with a check of the hash chain."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.services import audit_verify
from core.admin_scoping import MerchantScopedAdmin, ScopedValuesFilter


class ActionFilter(ScopedValuesFilter):
    title = "action"
    parameter_name = "action"
    field = "action"


class SubjectTypeFilter(ScopedValuesFilter):
    title = "subject type"
    parameter_name = "subject_type"
    field = "subject_type"


@admin.register(AuditEvent)
class AuditEventAdmin(MerchantScopedAdmin):
    list_display = ("created_at", "action", "subject_type", "subject_id", "actor", "seq")
    staff_list_display = ("scope",)
    list_filter = (ActionFilter, SubjectTypeFilter, ("created_at", admin.DateFieldListFilter))
    search_fields = ("=subject_id", "actor", "action")
    readonly_fields = ("scope", "seq", "created_at", "actor", "action", "subject_type", "subject_id", "account_id",
                       "before", "after", "data", "prev_hash", "hash")
    fields = readonly_fields
    ordering = ("-created_at", "-seq")
    actions = ("verify_chain",)

    @admin.action(description="Verify the hash chain of the selected rows")
    def verify_chain(self, request: HttpRequest, queryset) -> None:
        # The whole chain of each selected row is walked: a deleted row shows only from its neighbours.
        scopes = sorted(set(queryset.order_by().values_list("scope", flat=True).distinct()))
        broken = []
        for scope in scopes:
            broken += audit_verify(scope=scope)
        if broken:
            for b in broken[:20]:
                self.message_user(request, f"Chain {b.scope} broken at seq {b.seq}: {b.reason}", messages.ERROR)
        else:
            self.message_user(request, f"Chain intact ({', '.join(scopes)}).", messages.SUCCESS)
