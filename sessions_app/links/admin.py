"""Payment links in the dashboard: a merchant creates, turns off and on, and renames its links,
and sees how many sessions each one started and what they paid. Scoped per merchant."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from core import currencies
from core import errors as domain_errors
from core.admin_scoping import MerchantScopedAdmin, can_use_dashboard, merchant_account
from core.formatting import money
from keys_app.models import Mode
from keys_app.selectors import account_has_live_key
from sessions_app.links import selectors, services
from sessions_app.models import PaymentLink


class PaymentLinkAddForm(forms.ModelForm):
    custom_amount = forms.BooleanField(required=False, label="Buyer chooses the amount",
                                       help_text="Then fill in min and max (and a preset) instead of amount.")

    class Meta:
        model = PaymentLink
        fields = ("mode", "amount", "currency", "custom_amount", "custom_amount_min", "custom_amount_max",
                  "custom_amount_preset", "description", "success_url", "cancel_url")

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account
        live = account is not None and account_has_live_key(account_id=account.pk)
        self.fields["mode"].choices = [c for c in Mode.choices if live or c[0] == Mode.TEST]
        for name in ("success_url", "cancel_url"):
            self.fields[name] = forms.URLField(max_length=2000, required=False, assume_scheme="https")
        self.fields["currency"] = forms.ChoiceField(choices=[(c, c) for c in sorted(currencies.EXPONENTS)],
                                                    initial="EUR")

    def clean(self):
        data = super().clean()
        custom = None
        if data.get("custom_amount"):
            custom = {"min": data.get("custom_amount_min"), "max": data.get("custom_amount_max"),
                      "preset": data.get("custom_amount_preset")}
            if custom["min"] is None or custom["max"] is None:
                raise forms.ValidationError("A custom amount needs a min and a max.")
        try:
            self.price = services.link_price_clean(currency=data.get("currency") or "EUR",
                                                   amount=None if custom else data.get("amount"),
                                                   custom_amount=custom)
        except domain_errors.DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


class PaymentLinkChangeForm(forms.ModelForm):
    class Meta:
        model = PaymentLink
        fields = ("active", "description")


@admin.register(PaymentLink)
class PaymentLinkAdmin(MerchantScopedAdmin):
    list_display = ("id", "description", "price", "mode", "active", "link_url", "created_at")
    staff_list_display = ("account",)
    list_filter = ("active", "mode")
    staff_list_filter = ("account",)
    search_fields = ("id", "slug", "description")
    list_select_related = ("account",)
    actions = ("deactivate", "activate")
    readonly_fields = ("id", "link_url", "price", "mode", "currency", "created_at", "updated_at", "sessions_started")

    @admin.display(description="price")
    def price(self, obj: PaymentLink) -> str:
        if obj.is_custom_amount:
            return (f"{money(obj.custom_amount_min, obj.currency, grouped=False)} to "
                    f"{money(obj.custom_amount_max, obj.currency, grouped=False)} (buyer chooses)")
        return money(obj.amount, obj.currency, grouped=False)

    @admin.display(description="link")
    def link_url(self, obj: PaymentLink) -> str:
        url = selectors.link_url(obj)
        return format_html('<a href="{}" rel="noopener" target="_blank">{}</a>', url, url)

    @admin.display(description="sessions from this link")
    def sessions_started(self, obj: PaymentLink) -> str:
        stats = selectors.link_stats(link_id=obj.pk)
        return format_html('<span data-testid="link-stats">{} started, {} paid, {} revenue</span>',
                           stats["sessions"], stats["paid"], money(stats["revenue"], obj.currency, grouped=False))

    # ---- who may do what: a merchant login on its own links; staff may turn links off and on
    def has_add_permission(self, request: HttpRequest) -> bool:
        return merchant_account(request.user) is not None

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return can_use_dashboard(request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            account = merchant_account(request.user)

            class Form(PaymentLinkAddForm):
                def __init__(self, *args, **kw):
                    super().__init__(*args, account=account, **kw)

            kwargs["form"] = Form
            kwargs["fields"] = PaymentLinkAddForm.Meta.fields
        else:
            kwargs["form"] = PaymentLinkChangeForm
            kwargs["fields"] = PaymentLinkChangeForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return PaymentLinkAddForm.Meta.fields
        return ("id", "link_url", "price", "mode", "active", "description", "sessions_started", "created_at",
                "updated_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def _actor(self, request: HttpRequest) -> str:
        return f"admin:{request.user.get_username()}"

    def save_model(self, request, obj: PaymentLink, form, change) -> None:
        if change:
            changed = {f: form.cleaned_data[f] for f in form.changed_data if f in PaymentLinkChangeForm.Meta.fields}
            if changed:
                services.link_update(link=obj, actor=self._actor(request), **changed)
            return
        currency, amount, custom = form.price
        created = services.link_create(
            account=merchant_account(request.user), mode=form.cleaned_data["mode"], actor=self._actor(request),
            currency=currency, amount=amount,
            custom_amount=None if custom is None else {"min": custom[0], "max": custom[1], "preset": custom[2]},
            description=form.cleaned_data.get("description") or "",
            success_url=form.cleaned_data.get("success_url") or "",
            cancel_url=form.cleaned_data.get("cancel_url") or "")
        # The admin goes on with the row the service wrote (its id, slug and times).
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False

    def _set_active(self, request: HttpRequest, queryset, active: bool) -> None:
        changed = 0
        for link in queryset:
            if link.active != active:
                services.link_update(link=link, actor=self._actor(request), active=active)
                changed += 1
        self.message_user(request, f"{changed} link(s) turned {'on' if active else 'off'}.", messages.SUCCESS)

    @admin.action(description="Turn off the selected links (their page says so; no new sessions)")
    def deactivate(self, request: HttpRequest, queryset) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description="Turn on the selected links again")
    def activate(self, request: HttpRequest, queryset) -> None:
        self._set_active(request, queryset, True)
