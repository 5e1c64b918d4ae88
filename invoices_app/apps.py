from django.apps import AppConfig

from sessions_app.signals import (
    refund_claim_requested,
    refund_succeeded,
    session_late_payment,
    session_paid,
    test_session_delivery_shown,
)


class InvoicesAppConfig(AppConfig):
    name = "invoices_app"
    verbose_name = "Invoices and fulfilment"

    def ready(self) -> None:
        # Imported once the app registry is ready: the receivers import models.
        from invoices_app import receivers

        session_paid.connect(receivers.on_session_paid, dispatch_uid="invoices_app.fulfil_on_paid")
        session_late_payment.connect(receivers.on_session_late_payment,
                                     dispatch_uid="invoices_app.notify_late_payment")
        refund_succeeded.connect(receivers.on_refund_succeeded, dispatch_uid="invoices_app.credit_note")
        refund_claim_requested.connect(receivers.on_refund_claim_requested, dispatch_uid="invoices_app.refund_claim")
        test_session_delivery_shown.connect(receivers.on_test_session_delivery_shown,
                                            dispatch_uid="invoices_app.test_access_link_shown")
