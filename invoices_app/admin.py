"""Invoices in the dashboard: download the PDF, resend the receipt, revoke the access link."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin_scoping import MerchantScopedAdmin, ScopedValuesFilter
from core.formatting import money
from invoices_app.models import AccessLink, Invoice
from invoices_app.selectors import invoice_search
from invoices_app.services.access import access_link_revoke
from invoices_app.services.delivery import ResendLogged, ResendRefused, receipt_resend
from invoices_app.services.documents import invoice_pdf_bytes, invoice_pdf_filename


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class InvoiceCurrencyFilter(ScopedValuesFilter):
    title = "currency"
    parameter_name = "currency"
    field = "currency"


@admin.register(Invoice)
class InvoiceAdmin(MerchantScopedAdmin):
    list_display = ("number", "issue_date", "buyer_email", "gross_display", "status", "session_link", "pdf_link")
    staff_list_display = ("account",)
    list_filter = ("status", InvoiceCurrencyFilter, ("issue_date", admin.DateFieldListFilter))
    staff_list_filter = ("account",)
    search_fields = ("number", "buyer_email", "buyer_name", "payment_reference")
    search_help_text = ("An exact invoice number, payment reference or session id (indexed), or the start of "
                        "the customer's email (prefix index on PostgreSQL)")
    list_select_related = ("account",)
    ordering = ("-issued_at",)
    readonly_fields = ("number", "status", "issue_date", "issued_at", "refunded_at", "account", "session_link",
                       "seller_name", "seller_address", "seller_vat_id", "seller_email", "buyer_email", "buyer_name",
                       "buyer_address", "description", "currency", "vat_rate", "net", "vat", "gross",
                       "payment_provider", "payment_reference", "paid_at", "pdf_link", "pdf_sha256")
    fields = readonly_fields
    actions = ("resend_receipts", "revoke_access_links")
    change_form_template = "admin/invoices_app/invoice/change_form.html"
    change_list_template = "admin/invoices_app/invoice/change_list.html"

    @admin.display(description="gross", ordering="gross")
    def gross_display(self, obj: Invoice) -> str:
        return money(obj.gross, obj.currency, grouped=False)

    @admin.display(description="session")
    def session_link(self, obj: Invoice) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:sessions_app_paymentsession_change",
                                                          args=[obj.session_id]), obj.session_id)

    @admin.display(description="PDF")
    def pdf_link(self, obj: Invoice) -> str:
        if not obj.pdf_name:
            return "being prepared"
        return format_html('<a href="{}" data-testid="invoice-pdf">{}.pdf</a>',
                           reverse("admin:invoices_app_invoice_pdf", args=[obj.pk]), obj.number)

    def get_search_results(self, request, queryset, search_term):
        return invoice_search(queryset, search_term), False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/pdf/", wrap(self.pdf_view), name="invoices_app_invoice_pdf"),
            path("<path:object_id>/resend/", wrap(self.resend_view), name="invoices_app_invoice_resend"),
            path("<path:object_id>/revoke-link/", wrap(self.revoke_link_view), name="invoices_app_invoice_revoke_link"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        invoice = self.get_object(request, object_id)
        link = AccessLink.objects.filter(session_id=invoice.session_id).first()
        extra_context = {
            **(extra_context or {}),
            "access_link": link,
            "link_uses": list(link.uses.all()[:50]) if link else [],
            "emails": list(invoice.session.emails.order_by("kind")),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def pdf_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        pdf = invoice_pdf_bytes(invoice=invoice)
        if pdf is None:
            raise Http404("The PDF is not ready yet.")
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(invoice)}"'
        return response

    def resend_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        if request.method == "POST":
            self._resend(request, invoice)
        return redirect("admin:invoices_app_invoice_change", invoice.pk)

    def revoke_link_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        if request.method == "POST":
            self._revoke(request, invoice)
        return redirect("admin:invoices_app_invoice_change", invoice.pk)

    def _resend(self, request: HttpRequest, invoice: Invoice) -> None:
        try:
            to = receipt_resend(invoice=invoice, actor=_actor(request))
        except ResendRefused as exc:
            self.message_user(request, f"{invoice.number}: {exc}", messages.WARNING)
            return
        except ResendLogged as exc:
            self.message_user(request, f"{invoice.number}: {exc}", messages.INFO)
            return
        except Exception as exc:  # an SMTP failure is reported, not a 500
            self.message_user(request, f"{invoice.number}: sending failed ({type(exc).__name__}).", messages.ERROR)
            return
        self.message_user(request, f"{invoice.number}: receipt sent again to {to}.", messages.SUCCESS)

    def _revoke(self, request: HttpRequest, invoice: Invoice) -> None:
        link = AccessLink.objects.filter(session_id=invoice.session_id).first()
        if link is None:
            self.message_user(request, f"{invoice.number}: no access link.", messages.WARNING)
            return
        access_link_revoke(link=link, actor=_actor(request), reason="dashboard")
        self.message_user(request, f"{invoice.number}: access link revoked.", messages.SUCCESS)

    @admin.action(description="Resend the receipt email")
    def resend_receipts(self, request: HttpRequest, queryset) -> None:
        for invoice in queryset.select_related("session"):
            self._resend(request, invoice)

    @admin.action(description="Revoke the access links")
    def revoke_access_links(self, request: HttpRequest, queryset) -> None:
        for invoice in queryset:
            self._revoke(request, invoice)
