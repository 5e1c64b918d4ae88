"""Refunds in the dashboard: the list (scoped per merchant) and the "Refund" action on a paid
session, which shows what will happen before it does it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core import errors
from core.admin_scoping import MerchantScopedAdmin
from core.formatting import money
from sessions_app.models import PaymentSession
from sessions_app.refunds.models import Refund, RefundReason
from sessions_app.refunds.services import refund_create
from sessions_app.refunds.state import refundable, refundable_amount, revokes_key


@admin.register(Refund)
class RefundAdmin(MerchantScopedAdmin):
    list_display = ("id", "amount_display", "mode", "status", "reason", "origin", "provider", "session_link",
                    "created_at", "succeeded_at")
    staff_list_display = ("account",)
    list_filter = ("status", "mode", "origin", "reason", ("created_at", admin.DateFieldListFilter))
    staff_list_filter = ("account",)
    search_fields = ("provider_reference",)
    list_select_related = ("account",)
    readonly_fields = ("id", "session_link", "account", "amount_display", "mode", "status", "reason", "origin",
                       "actor", "provider", "provider_reference", "failure_reason", "revoke_key", "created_at",
                       "succeeded_at", "failed_at", "canceled_at", "claim_address", "claimed_at", "payout_tx_hash")
    fields = readonly_fields

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return money(obj.amount, obj.currency, grouped=False)

    @admin.display(description="session")
    def session_link(self, obj: Refund) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:sessions_app_paymentsession_change",
                                                          args=[obj.session_id]), obj.session_id)


class RefundForm(forms.Form):
    amount = forms.DecimalField(required=False, min_value=Decimal("0.001"), max_digits=18, decimal_places=3,
                                help_text="Leave empty to refund everything that is left.")
    reason = forms.ChoiceField(choices=RefundReason.choices, initial=RefundReason.REQUESTED_BY_CUSTOMER)
    revoke_key = forms.ChoiceField(required=False, label="Revoke the buyer's key on a full refund",
                                   choices=[("", "The account's default"), ("yes", "Yes"), ("no", "No")])


# The form's choice; absent when the account's default applies.
_REVOKE_KEY = {"yes": True, "no": False}


def _plan(session: PaymentSession, data: dict) -> dict:
    """What the refund will do, said before it is done."""
    left = refundable_amount(session)
    amount = data.get("amount") or left
    full = amount + session.amount_refunded >= session.amount
    revoke = revokes_key(_REVOKE_KEY.get(data.get("revoke_key") or ""), session)
    how = {"stripe": "Stripe returns the money to the customer's card.",
           "onecom": "It stays pending until One.com confirms the refund by its signed callback.",
           "web3": "The customer is emailed a link to name a receiving address; you then pay out from your own "
                   "wallet and submit the transaction."}.get(session.provider, "")
    if session.mode == "test":
        how = "Test mode: " + (how if session.provider in ("onecom", "web3") else "nothing real is moved.")
    return {"amount": money(amount, session.currency, grouped=False), "left": money(left, session.currency,
                                                                                       grouped=False),
            "full": full, "revokes_key": full and revoke, "how": how, "fits": 0 < amount <= left}


@admin.action(description="Refund the selected paid session…")
def refund_session(modeladmin, request: HttpRequest, queryset):
    sessions = list(queryset.select_related("account")[:2])
    if len(sessions) != 1 or not refundable(sessions[0]):
        modeladmin.message_user(request, "Select exactly one paid session to refund.", messages.WARNING)
        return None
    session = sessions[0]
    form = RefundForm(request.POST if "amount" in request.POST else None)
    context = {**modeladmin.admin_site.each_context(request), "session": session, "form": form,
               "opts": modeladmin.model._meta, "title": "Refund a payment",
               "paid": money(session.amount, session.currency, grouped=False)}
    if form.is_bound and form.is_valid():
        context["plan"] = _plan(session, form.cleaned_data)
        if request.POST.get("confirm") == "yes" and context["plan"]["fits"]:
            revoke = _REVOKE_KEY.get(form.cleaned_data.get("revoke_key") or "")
            try:
                refund = refund_create(account=session.account, session_id=session.pk,
                                       amount=form.cleaned_data.get("amount"), reason=form.cleaned_data["reason"],
                                       revoke_key=revoke, actor=f"admin:{request.user.get_username()}",
                                       origin=Refund.Origin.DASHBOARD)
            except (errors.DomainError, InvalidOperation) as exc:
                modeladmin.message_user(request, f"Not refunded: {exc}", messages.ERROR)
                return None
            modeladmin.message_user(request, f"Refund of {money(refund.amount, refund.currency, grouped=False)}: "
                                             f"{refund.status}.", messages.SUCCESS)
            return None
    return TemplateResponse(request, "admin/sessions_app/refund_confirm.html", context)
