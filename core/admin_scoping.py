"""Who sees what in the dashboard (Django admin).

Staff are Django superusers: they see every merchant's rows. A merchant login is a
Django user with `is_staff=True` (so it may enter /admin/), `is_superuser=False`, and
an `Account` linked through `Account.user`; it sees only rows of that account. A
non-superuser without a linked account sees nothing.

Every admin page of the project derives from `MerchantScopedAdmin`, which filters the
one queryset Django admin builds everything from (changelist, change view, search,
filters, autocomplete, actions), turns "not in your queryset" into a 404, limits
foreign-key choices, and grants view access by account link rather than by Django's
per-model permissions.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.exceptions import NotRegistered
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _


def is_staff_user(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def merchant_account(user: Any):
    """The Account a merchant login acts for, or None (staff, anonymous, or unlinked)."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return None
    try:
        return user.account
    except (ObjectDoesNotExist, AttributeError):  # a user without an account, or anonymous
        return None


def can_use_dashboard(user: Any) -> bool:
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    return is_staff_user(user) or merchant_account(user) is not None


def scope_queryset(qs: QuerySet, user: Any, account_field: str) -> QuerySet:
    """Every row for staff; the merchant's own rows otherwise; nothing for anyone else."""
    if is_staff_user(user):
        return qs
    account = merchant_account(user)
    if account is None:
        return qs.none()
    return qs.filter(**{account_field: account.pk})


def viewer_account_id(request: HttpRequest) -> int | None:
    """Whose figures and exports to show: the merchant's own; for staff all (None) or ?account=<id>."""
    if is_staff_user(request.user):
        raw = request.GET.get("account", "")
        return int(raw) if raw.isdigit() else None
    account = merchant_account(request.user)
    return account.pk if account else -1  # -1 matches no account


class EstimatedCountPaginator(Paginator):
    """Counts a list exactly up to EXACT_LIMIT rows, and beyond that takes PostgreSQL's estimate
    (the planner's row count, from pg_class.reltuples and the column statistics): a merchant's
    list costs the same at a thousand rows and at a million. `estimated` tells the page to say
    "about"."""

    EXACT_LIMIT = 10_000
    estimated = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list.order_by()
        # COUNT(*) over a LIMIT subquery: at most EXACT_LIMIT + 1 index entries are read.
        exact = qs[: self.EXACT_LIMIT + 1].count()
        if exact <= self.EXACT_LIMIT:
            return exact
        estimate = planner_rows(qs)
        if estimate is None:
            return qs.count()  # SQLite, the embedded run: no planner estimate, and a small table
        self.estimated = True
        return max(estimate, exact)


def planner_rows(qs: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows a queryset returns (None on another database)."""
    connection = connections[qs.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


class MerchantScopedAdmin(admin.ModelAdmin):
    # The lookup path from this model to the Account id it belongs to.
    account_field: str = "account_id"
    # Filters and columns only staff get (they name other merchants).
    staff_list_filter: tuple = ()
    staff_list_display: tuple = ()
    list_per_page = 50
    show_full_result_count = False  # a second COUNT(*) per page, for nothing
    # No COUNT(*) of the whole list either: exact up to 10,000 rows, estimated beyond.
    paginator = EstimatedCountPaginator

    def action_checkbox(self, obj: Model) -> SafeString:
        # Django renders this through the CheckboxInput widget's template, once per row: a third of
        # a 50-row list's time. The same markup, written directly.
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           helpers.ACTION_CHECKBOX_NAME, str(obj.pk),
                           format_html(_("Select this object for an action - {}"), str(obj)))

    # ---- rows
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return scope_queryset(super().get_queryset(request), request.user, self.account_field)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Model:
        # Django admin redirects to the index for a missing object; another merchant's
        # object must look exactly like one that does not exist: a 404.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        try:
            related_admin = self.admin_site.get_model_admin(db_field.remote_field.model)
        except NotRegistered:
            related_admin = None
        if isinstance(related_admin, MerchantScopedAdmin) and "queryset" not in kwargs:
            kwargs["queryset"] = related_admin.get_queryset(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request: HttpRequest):
        base = tuple(super().get_list_filter(request))
        return base + self.staff_list_filter if is_staff_user(request.user) else base

    def get_list_display(self, request: HttpRequest):
        base = tuple(super().get_list_display(request))
        if not is_staff_user(request.user):
            return base
        return base[:1] + self.staff_list_display + base[1:]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # A merchant may not probe other accounts through hand-written query strings.
        if request is not None and not is_staff_user(request.user) and lookup.split("__")[0] == "account":
            return False
        return super().lookup_allowed(lookup, value, request)

    # ---- permissions: by account link, not per-model Django permissions
    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_use_dashboard(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return can_use_dashboard(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ScopedValuesFilter(admin.SimpleListFilter):
    """Choices drawn from the viewer's own rows, so a filter never lists another merchant's values.

    Subclass with `title`, `parameter_name` and `field`.
    """

    field: str = ""
    # Values are drawn from the viewer's newest rows: a bounded read, not a scan of the history.
    sample_rows = 5_000

    def values(self, request, model_admin) -> list[str]:
        recent = model_admin.get_queryset(request)
        ordering = model_admin.get_ordering(request)
        recent = recent.order_by(*ordering) if ordering else recent
        sample = recent.values_list(self.field, flat=True)[: self.sample_rows]
        return [v for v in set(sample) if v]

    def lookups(self, request, model_admin):
        values = set(self.values(request, model_admin))
        if self.value():
            values.add(self.value())  # the chosen value stays listed
        return [(v, v) for v in sorted(values)[:200]]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset
