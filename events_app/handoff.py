"""How deliveries reach a worker: by the dispatcher in the workers on PostgreSQL with Redis (no
publish in the web request), queued on commit otherwise (SQLite, the embedded default)."""

from __future__ import annotations

import logging

from celery import Task, current_app
from django.conf import settings

from core.background import run_in_background, workers_listen

logger = logging.getLogger(__name__)


def _task(name: str) -> Task:
    # By name from the app's registry: events_app.tasks imports the modules that call this one.
    return current_app.tasks[f"events_app.tasks.{name}"]


def dispatcher_active() -> bool:
    """Whether a worker's dispatcher (events_app.dispatch) finds new events by itself."""
    return workers_listen()


# The dispatcher's batches are served after everything else on Redis (kombu's priority steps 0, 3,
# 6, 9; fulfilment goes at CELERY_TASK_DEFAULT_PRIORITY, 6): a backlog of webhooks never holds up
# a buyer's receipt. A merchant's own test or redelivery goes at the default.
_PRIORITIES = {"deliveries_send": 9}

def _apply(name: str, args: list, kwargs: dict) -> None:
    _task(name).apply(args=args, kwargs=kwargs)


def queue(name: str, *args, **kwargs) -> bool:
    """Queue a task of events_app; a broker failure is logged, and the dispatcher's sweep retries."""
    if current_app.conf.task_always_eager and settings.FULFILMENT_EAGER_BACKGROUND:
        # No broker (the embedded default): as for fulfilment, keep the HTTP requests to merchants out of the web request, on a background thread.
        run_in_background("merchant-webhooks", _apply, name, list(args), kwargs)
        return True
    try:
        options = {"priority": _PRIORITIES[name]} if name in _PRIORITIES else {}
        _task(name).apply_async(args=args, kwargs=kwargs, **options)
    except Exception:
        logger.exception("could not queue %s; the dispatcher's sweep will retry", name)
        return False
    return True
