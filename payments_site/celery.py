import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")

app = Celery("payments_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Web3 payment polling lives in a sub-package of sessions_app.
app.autodiscover_tasks(["sessions_app.crypto"])


class _ThreadStep(bootsteps.StartStopStep):
    """A thread of the worker's own, started with it when wanted and stopped with it."""

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.thread = None

    def load(self):
        """The thread to run, or None when it is not wanted."""
        raise NotImplementedError

    def start(self, worker) -> None:
        self.thread = self.load()
        if self.thread is not None:
            self.thread.start()

    def stop(self, worker) -> None:
        if self.thread is not None:
            self.thread.stop()


class FulfilmentRelay(_ThreadStep):
    """Paid sessions announced by PostgreSQL become fulfilment tasks (invoices_app/relay.py)."""

    def load(self):
        # Imported when the worker starts: this module loads before Django is set up.
        from invoices_app.relay import Relay, relay_active

        return Relay() if relay_active() else None


app.steps["worker"].add(FulfilmentRelay)


class MerchantWebhookDispatcher(_ThreadStep):
    """New events become deliveries, and deliveries due become tasks (events_app/dispatch.py)."""

    def load(self):
        # Imported when the worker starts: this module loads before Django is set up.
        from events_app.dispatch import Dispatcher

        return Dispatcher() if Dispatcher.wanted() else None


app.steps["worker"].add(MerchantWebhookDispatcher)
