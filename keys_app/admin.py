"""Dashboard pages for accounts, API keys and customers' entitlement keys. Every change goes
through keys_app.services, which audits it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core import errors
from core.admin_scoping import MerchantScopedAdmin, is_staff_user
from keys_app import entitlements, publishable, selectors, services
from keys_app.apis import AccountApi
from keys_app.models import Account, ApiKey, EntitlementKey, Mode


def admin_actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class AccountAdminForm(forms.ModelForm):
    """The dashboard's account edit, held to PATCH /account's rules: the API's own input serializer
    checks every field (vat_id and invoice_prefix patterns, lengths, email, vat_rate bounds)."""

    class Meta:
        model = Account
        fields = ("name", "email", "address", "vat_id", "vat_rate", "invoice_prefix", "issued_key_mode",
                  "email_key_to_customer")

    def clean(self):
        cleaned = super().clean()
        serializer = AccountApi.InputSerializer(
            data={f: cleaned[f] for f in self.changed_data if f in cleaned and f in AccountApi.InputSerializer().fields},
            context={"account": self.instance})
        if not serializer.is_valid():
            for field, messages_ in serializer.errors.items():
                for message in messages_ if isinstance(messages_, list) else [messages_]:
                    self.add_error(field if field in self.fields else None, str(message))
        return cleaned

    def clean_allowed_origins(self):
        try:
            return publishable.allowed_origins_clean(self.cleaned_data.get("allowed_origins") or [])
        except errors.DomainError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Account)
class AccountAdmin(MerchantScopedAdmin):
    account_field = "pk"
    form = AccountAdminForm
    list_display = ("name", "email", "created_at")
    search_fields = ("name", "email")
    ordering = ("name", "pk")
    fields = ("name", "email", "address", "vat_id", "vat_rate", "invoice_prefix", "issued_key_mode",
              "email_key_to_customer", "refund_revokes_key", "allowed_origins", "publishable_keys", "created_at")
    readonly_fields = ("created_at", "publishable_keys")
    actions = ("rotate_publishable_keys",)

    @admin.display(description="Publishable keys (for web pages, with payment links only)")
    def publishable_keys(self, obj: Account) -> str:
        live = selectors.account_has_live_key(account_id=obj.pk)
        keys = [publishable.publishable_key_ensure(account=obj, mode=mode).key
                for mode in (Mode.TEST, Mode.LIVE) if mode == Mode.TEST or live]
        return format_html("<br>".join(["<code>{}</code>"] * len(keys)), *keys)

    @admin.action(description="Replace the publishable keys of the selected accounts (the old ones stop now)")
    def rotate_publishable_keys(self, request: HttpRequest, queryset) -> None:
        replaced = 0
        for account in queryset:
            for key in account.publishable_keys.all():
                publishable.publishable_key_rotate(account=account, mode=key.mode, actor=admin_actor(request))
                replaced += 1
        self.message_user(request, f"{replaced} publishable key(s) replaced.", messages.SUCCESS)

    def has_change_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # A merchant edits its own business details (they go on its invoices); get_queryset
        # already limits which account that can be.
        return self.has_view_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Account, form, change: bool) -> None:
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in services.ACCOUNT_EDITABLE_FIELDS}
        if changes:
            services.account_update(account=obj, actor=admin_actor(request), **changes)


class RotateForm(forms.Form):
    overlap = forms.ChoiceField(
        choices=[("0", "None: the old key stops now"), ("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days")],
        initial="24h", label="The old key keeps working for",
    )


def _key_once(request: HttpRequest, model_admin: ApiKeyAdmin, *, issued: services.IssuedKey, title: str,
              note: str) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "note": note,
        "key": issued.api_key,
        "plaintext": issued.plaintext,
        "key_url": reverse("admin:keys_app_apikey_change", args=[issued.api_key.pk]),
    }
    response = TemplateResponse(request, "admin/keys_app/apikey/key_once.html", context)
    # The plain key is in this one response only: never cached, never stored.
    response["Cache-Control"] = "no-store"
    return response


@admin.register(ApiKey)
class ApiKeyAdmin(MerchantScopedAdmin):
    list_display = ("display", "mode", "status", "label", "created_at", "expires_at", "last_used_at", "buttons")
    staff_list_display = ("account",)
    list_filter = ("mode", "status")
    search_fields = ("prefix", "last4", "label")
    list_select_related = ("account",)
    readonly_fields = ("display", "account", "mode", "status", "label", "created_at", "expires_at", "revoked_at",
                       "last_used_at", "replaced_by")
    fields = readonly_fields
    actions = ("revoke_selected",)
    change_form_template = "admin/keys_app/apikey/change_form.html"

    @admin.display(description="Key")
    def display(self, obj: ApiKey) -> str:
        return obj.display

    @admin.display(description="")
    def buttons(self, obj: ApiKey) -> str:
        if obj.status != ApiKey.Status.ACTIVE:
            return ""
        return format_html('<a class="button" href="{}">Rotate</a>',
                           reverse("admin:keys_app_apikey_rotate", args=[obj.pk]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/rotate/", wrap(self.rotate_view), name="keys_app_apikey_rotate"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name="keys_app_apikey_revoke"),
            path("<path:object_id>/upgrade/", wrap(self.upgrade_view), name="keys_app_apikey_upgrade"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_upgrade": is_staff_user(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request: HttpRequest, template: str, **context) -> TemplateResponse:
        return TemplateResponse(request, template, {**self.admin_site.each_context(request), "opts": self.opts,
                                                    **context})

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self.get_object(request, object_id)  # 404 unless it is the viewer's key
        form = RotateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                issued = services.key_rotate(key=key, overlap=services.ROTATION_OVERLAPS[form.cleaned_data["overlap"]],
                                             actor=admin_actor(request))
            except errors.DomainError as exc:
                messages.error(request, exc.message)
                return redirect("admin:keys_app_apikey_change", key.pk)
            key.refresh_from_db()
            note = (f"The old key {key.display} stopped working." if key.status == ApiKey.Status.REVOKED
                    else f"The old key {key.display} keeps working until {key.expires_at:%Y-%m-%d %H:%M} UTC.")
            return _key_once(request, self, issued=issued, title="Key rotated", note=note)
        return self._page(request, "admin/keys_app/apikey/rotate.html", title=f"Rotate {key.display}",
                          key=key, form=form, original=key)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self.get_object(request, object_id)
        if request.method == "POST":
            services.key_revoke(key=key, actor=admin_actor(request))
            messages.success(request, f"Key {key.display} revoked.")
            return redirect("admin:keys_app_apikey_change", key.pk)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        return self._page(request, "admin/keys_app/apikey/revoke.html", title=f"Revoke {key.display}", key=key,
                          original=key)

    def upgrade_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # Approving live payments is a staff decision, never the merchant's own.
        if not is_staff_user(request.user):
            raise PermissionDenied
        key = self.get_object(request, object_id)
        if request.method == "POST":
            try:
                issued = services.key_upgrade_live(account=key.account, actor=admin_actor(request))
            except errors.Forbidden as exc:  # a development server (ALLOW_DEBUG) issues no live keys
                self.message_user(request, exc.message, messages.ERROR)
                return self._page(request, "admin/keys_app/apikey/upgrade.html", title=f"Issue a live key for "
                                  f"{key.account.name}", key=key, original=key)
            return _key_once(request, self, issued=issued, title="Live key issued",
                             note=f"A live key for {key.account.name}. Their test keys keep working.")
        return self._page(request, "admin/keys_app/apikey/upgrade.html", title=f"Issue a live key for "
                          f"{key.account.name}", key=key, original=key)

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset) -> None:
        # `queryset` comes from get_queryset, so only the viewer's own keys can be in it.
        count = 0
        for key in queryset.filter(status=ApiKey.Status.ACTIVE):
            services.key_revoke(key=key, actor=admin_actor(request))
            count += 1
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)


class OverlapForm(forms.Form):
    overlap = forms.ChoiceField(
        choices=[("0", "None: the old key stops now"), ("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days")],
        initial="24h", label="The old key keeps verifying for",
    )


@admin.register(EntitlementKey)
class EntitlementKeyAdmin(MerchantScopedAdmin):
    """The keys a merchant's buyers hold. Merchants revoke, rotate and upgrade their own."""

    list_display = ("display", "mode", "state", "customer_email", "session_id", "created_at", "expires_at")
    staff_list_display = ("account",)
    list_filter = ("mode", "status")
    search_fields = ("customer_email", "prefix", "last4")
    readonly_fields = ("display", "account", "mode", "state", "customer_email", "session_id", "metadata",
                       "created_at", "expires_at", "revoked_at", "refunded_at", "replaces", "superseded_by",
                       "superseded_at")
    fields = readonly_fields
    actions = ("revoke_selected",)
    change_form_template = "admin/keys_app/entitlementkey/change_form.html"

    @admin.display(description="Key")
    def display(self, obj: EntitlementKey) -> str:
        return obj.display

    @admin.display(description="State")
    def state(self, obj: EntitlementKey) -> str:
        if obj.status == EntitlementKey.Status.REVOKED:
            return "revoked"
        if obj.refunded_at:
            return "refunded"
        if obj.is_expired():
            return "expired"
        return "replaced, in overlap" if obj.superseded_by_id else "active"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/rotate/", wrap(self.rotate_view), name="keys_app_entitlementkey_rotate"),
            path("<path:object_id>/upgrade/", wrap(self.upgrade_view), name="keys_app_entitlementkey_upgrade"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name="keys_app_entitlementkey_revoke"),
        ] + super().get_urls()

    def _page(self, request: HttpRequest, template: str, **context) -> TemplateResponse:
        return TemplateResponse(request, template, {**self.admin_site.each_context(request), "opts": self.opts,
                                                    **context})

    def _key_once(self, request: HttpRequest, issued: entitlements.IssuedEntitlementKey, *, title: str,
                  note: str) -> HttpResponse:
        response = self._page(request, "admin/keys_app/entitlementkey/key_once.html", title=title, note=note,
                              key=issued.key, plaintext=issued.plaintext,
                              key_url=reverse("admin:keys_app_entitlementkey_change", args=[issued.key.pk]))
        # The plain key is in this one response only: never cached, never stored.
        response["Cache-Control"] = "no-store"
        return response

    def _replace_view(self, request: HttpRequest, object_id: str, *, upgrade: bool) -> HttpResponse:
        key = self.get_object(request, object_id)  # 404 unless it is the viewer's key
        form = OverlapForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            replace = entitlements.entitlement_key_upgrade if upgrade else entitlements.entitlement_key_rotate
            try:
                issued = replace(key=key, overlap=services.ROTATION_OVERLAPS[form.cleaned_data["overlap"]],
                                 actor=admin_actor(request))
            except errors.DomainError as exc:
                messages.error(request, exc.message)
                return redirect("admin:keys_app_entitlementkey_change", key.pk)
            key.refresh_from_db()
            note = f"The old key {key.display} verifies until {key.expires_at:%Y-%m-%d %H:%M} UTC, then as expired."
            return self._key_once(request, issued, title="Live key issued" if upgrade else "Key rotated", note=note)
        if upgrade:
            explanation = (f"A live key replaces the test key {key.display} of {key.customer_email or 'this buyer'}: "
                           f"same purchase, same metadata and expiry. It is shown once, on the next page.")
        else:
            explanation = (f"A new {key.mode} key replaces {key.display}. It is shown once, on the next page. "
                           f"Choose how long the old key keeps verifying.")
        return self._page(request, "admin/keys_app/entitlementkey/confirm.html", key=key, original=key, form=form,
                          title=f"{'Upgrade' if upgrade else 'Rotate'} {key.display}", explanation=explanation,
                          submit_label="Upgrade to live" if upgrade else "Rotate key")

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._replace_view(request, object_id, upgrade=False)

    def upgrade_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._replace_view(request, object_id, upgrade=True)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        key = self.get_object(request, object_id)
        if request.method == "POST":
            entitlements.entitlement_key_revoke(key=key, actor=admin_actor(request))
            messages.success(request, f"Key {key.display} revoked.")
            return redirect("admin:keys_app_entitlementkey_change", key.pk)
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET", "POST"])
        return self._page(request, "admin/keys_app/entitlementkey/confirm.html", key=key, original=key,
                          title=f"Revoke {key.display}", submit_label="Revoke key",
                          explanation=f"Revoke {key.display} ({key.mode})? It verifies as revoked from now on. "
                                      f"This cannot be undone.")

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset) -> None:
        # `queryset` comes from get_queryset, so only the viewer's own keys can be in it.
        count = 0
        for key in queryset.filter(status=EntitlementKey.Status.ACTIVE):
            entitlements.entitlement_key_revoke(key=key, actor=admin_actor(request))
            count += 1
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
