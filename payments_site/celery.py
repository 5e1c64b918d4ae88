import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")

app = Celery("payments_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Web3 payment polling lives in a sub-package of sessions_app.
app.autodiscover_tasks(["sessions_app.crypto"])
