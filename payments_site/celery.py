import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")

app = Celery("payments_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Web3 payment polling lives in a sub-package of sessions_app.
app.autodiscover_tasks(["sessions_app.crypto"])


class FulfilmentRelay(bootsteps.StartStopStep):
    """Paid sessions announced by PostgreSQL become fulfilment tasks (invoices_app/relay.py)."""

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.relay = None

    def start(self, worker) -> None:
        # Imported when the worker starts: this module loads before Django is set up.
        from invoices_app.relay import Relay, relay_active

        if relay_active():
            self.relay = Relay()
            self.relay.start()

    def stop(self, worker) -> None:
        if self.relay is not None:
            self.relay.stop()


app.steps["worker"].add(FulfilmentRelay)


class MerchantWebhookDispatcher(bootsteps.StartStopStep):
    """New events become deliveries, and deliveries due become tasks (events_app/dispatch.py)."""

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.dispatcher = None

    def start(self, worker) -> None:
        # Imported when the worker starts: this module loads before Django is set up.
        from events_app.dispatch import Dispatcher

        if Dispatcher.wanted():
            self.dispatcher = Dispatcher()
            self.dispatcher.start()

    def stop(self, worker) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()


app.steps["worker"].add(MerchantWebhookDispatcher)
