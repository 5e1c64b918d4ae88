from django.contrib.admin.apps import AdminConfig


class PaymentsAdminConfig(AdminConfig):
    """Django admin with the revenue dashboard as its index page."""

    default_site = "dashboard.sites.PaymentsAdminSite"
