from django.contrib import admin
from django.urls import path

from invoices_app import views as invoice_views
from keys_app.apis import AccountApi
from sessions_app import apis as session_apis
from sessions_app import views as session_views

handler404 = "payments_site.errors.handler404"
handler500 = "payments_site.errors.handler500"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("account", AccountApi.as_view(), name="account"),
    path("create_session", session_apis.CreateSessionApi.as_view(), name="create-session"),
    path("sessions", session_apis.SessionListApi.as_view(), name="session-list"),
    path("sessions/<str:session_id>", session_apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/expire", session_apis.SessionExpireApi.as_view(), name="session-expire"),
    path("session/<str:session_id>/status", session_apis.SessionStatusApi.as_view(), name="session-status"),
    path("checkout", session_views.checkout, name="checkout"),
    path("checkout/<str:session_id>/simulate", session_views.checkout_simulate, name="checkout-simulate"),
    path("webhooks/stripe", session_views.stripe_webhook, name="webhook-stripe"),
    path("access/<str:token>", invoice_views.access_page, name="access"),
    path("access/<str:token>/invoice.pdf", invoice_views.access_invoice_pdf, name="access-invoice-pdf"),
    path("access/<str:token>/reveal-key", invoice_views.access_reveal_key, name="access-reveal-key"),
]
