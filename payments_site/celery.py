import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")

app = Celery("payments_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Web3 payment polling lives in a sub-package of sessions_app.
app.autodiscover_tasks(["sessions_app.crypto"])


class FulfilmentRelay(bootsteps.StartStopStep):
    """Each worker relays paid sessions from their Redis list to its queue (invoices_app/relay.py)."""

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.relay = None

    def start(self, worker) -> None:
        if not app.conf.broker_url.startswith("redis://"):
            return
        from invoices_app.relay import Relay, pending_key

        self.relay = Relay(url=app.conf.broker_url, key=pending_key())
        self.relay.start()

    def stop(self, worker) -> None:
        if self.relay is not None:
            self.relay.stop()


app.steps["worker"].add(FulfilmentRelay)
