from django.apps import AppConfig


class InvoicesAppConfig(AppConfig):
    name = "invoices_app"
    verbose_name = "Invoices and fulfilment"
