from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from events_app import apis as event_apis
from invoices_app import views as invoice_views
from keys_app import apis as key_apis
from keys_app.apis import AccountApi
from payments_site import landing
from sessions_app import apis as session_apis
from sessions_app import views as session_views
from sessions_app.links import apis as link_apis
from sessions_app.links import views as link_views
from sessions_app.refunds import apis as refund_apis
from sessions_app.refunds import views as refund_views

handler400 = "core.http.handler400"
handler403 = "core.http.handler403"
handler404 = "core.http.handler404"
handler500 = "core.http.handler500"

urlpatterns = [
    path("", landing.landing, name="landing"),
    # The set-password link printed by `create_merchant --with-login --password-link`.
    path("admin/set-password/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(),
         name="password_reset_confirm"),
    path("admin/set-password/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("admin/", admin.site.urls),
    path("account", AccountApi.as_view(), name="account"),
    path("keys", key_apis.KeyListApi.as_view(), name="key-list"),
    path("keys/verify", key_apis.KeyVerifyApi.as_view(), name="key-verify"),
    path("keys/<str:key_id>", key_apis.KeyDetailApi.as_view(), name="key-detail"),
    path("keys/<str:key_id>/revoke", key_apis.KeyRevokeApi.as_view(), name="key-revoke"),
    path("keys/<str:key_id>/rotate", key_apis.KeyRotateApi.as_view(), name="key-rotate"),
    path("keys/<str:key_id>/upgrade", key_apis.KeyUpgradeApi.as_view(), name="key-upgrade"),
    path("create_session", session_apis.CreateSessionApi.as_view(), name="create-session"),
    path("sessions", session_apis.SessionListApi.as_view(), name="session-list"),
    path("sessions/<str:session_id>", session_apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<str:session_id>/expire", session_apis.SessionExpireApi.as_view(), name="session-expire"),
    path("sessions/<str:session_id>/fulfil_anyway", session_apis.SessionFulfilAnywayApi.as_view(),
         name="session-fulfil-anyway"),
    path("sessions/<str:session_id>/refunds", refund_apis.SessionRefundsApi.as_view(), name="session-refunds"),
    path("refunds/<str:refund_id>", refund_apis.RefundDetailApi.as_view(), name="refund-detail"),
    path("refunds/<str:refund_id>/web3_payout", refund_apis.RefundPayoutApi.as_view(), name="refund-web3-payout"),
    path("refund-claim/<str:token>", refund_views.refund_claim, name="refund-claim"),
    path("refunds/<str:refund_id>/cancel", refund_apis.RefundCancelApi.as_view(), name="refund-cancel"),
    path("session/<str:session_id>/status", session_apis.SessionStatusApi.as_view(), name="session-status"),
    path("checkout", session_views.checkout, name="checkout"),
    path("checkout/<str:session_id>/simulate", session_views.checkout_simulate, name="checkout-simulate"),
    path("webhooks/stripe", session_views.stripe_webhook, name="webhook-stripe"),
    path("events", event_apis.EventListApi.as_view(), name="event-list"),
    path("events/<str:event_id>", event_apis.EventDetailApi.as_view(), name="event-detail"),
    path("webhook_endpoints", event_apis.EndpointListApi.as_view(), name="webhook-endpoint-list"),
    path("webhook_endpoints/<str:endpoint_id>", event_apis.EndpointDetailApi.as_view(), name="webhook-endpoint-detail"),
    path("webhook_endpoints/<str:endpoint_id>/rotate_secret", event_apis.EndpointRotateSecretApi.as_view(),
         name="webhook-endpoint-rotate-secret"),
    path("webhook_endpoints/<str:endpoint_id>/test", event_apis.EndpointTestApi.as_view(),
         name="webhook-endpoint-test"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("access", invoice_views.access_links_request, name="access-links"),
    path("access/<str:token>", invoice_views.access_page, name="access"),
    path("access/<str:token>/invoice.pdf", invoice_views.access_invoice_pdf, name="access-invoice-pdf"),
    path("access/<str:token>/credit-notes/<str:number>.pdf", invoice_views.access_credit_note_pdf,
         name="access-credit-note-pdf"),
    path("access/<str:token>/reveal-key", invoice_views.access_reveal_key, name="access-reveal-key"),
    path("access/<str:token>/rotate-key", invoice_views.access_rotate_key, name="access-rotate-key"),
    path("webhooks/onecom", session_views.onecom_webhook, name="webhook-onecom"),
    path("webhooks/web3", session_views.web3_webhook, name="webhook-web3"),
    path("checkout/<str:session_id>/pay/<str:provider>", session_views.checkout_pay, name="checkout-pay"),
    path("payment_links", link_apis.PaymentLinkListApi.as_view(), name="payment-link-list"),
    path("payment_links/<str:link_id>", link_apis.PaymentLinkDetailApi.as_view(), name="payment-link-detail"),
    path("pay/<str:slug>", link_views.pay, name="pay"),
    path("account/publishable_key/rotate", key_apis.PublishableKeyRotateApi.as_view(),
         name="publishable-key-rotate"),
    path("session/<str:session_id>/web3/tx", session_apis.SessionWeb3TxApi.as_view(), name="session-web3-tx"),
]
