"""How deliveries reach a worker: by the dispatcher in the workers on PostgreSQL with Redis (no
publish in the web request), queued on commit otherwise (SQLite, the embedded default)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import Task, current_app
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def _task(name: str) -> Task:
    # By name from the app's registry: events_app.tasks imports the modules that call this one.
    return current_app.tasks[f"events_app.tasks.{name}"]


def dispatcher_active() -> bool:
    """Whether a worker's dispatcher (events_app.dispatch) finds new events by itself."""
    conf = current_app.conf
    return connection.vendor == "postgresql" and not conf.task_always_eager and conf.broker_url.startswith("redis://")


# The dispatcher's batches are served after everything else on Redis (kombu's priority steps 0, 3,
# 6, 9; fulfilment goes at CELERY_TASK_DEFAULT_PRIORITY, 6): a backlog of webhooks never holds up
# a buyer's receipt. A merchant's own test or redelivery goes at the default.
_PRIORITIES = {"deliveries_send": 9}

_inline_pool: ThreadPoolExecutor | None = None
_inline_lock = threading.Lock()


def _run_inline(name: str, args: list, kwargs: dict) -> None:
    try:
        _task(name).apply(args=args, kwargs=kwargs)
    finally:
        connection.close()


def queue(name: str, *args, **kwargs) -> bool:
    """Queue a task of events_app; a broker failure is logged, and the dispatcher's sweep retries."""
    global _inline_pool
    if current_app.conf.task_always_eager and settings.FULFILMENT_EAGER_BACKGROUND:
        # No broker (the embedded default): as for fulfilment, keep the HTTP requests to merchants out of the web request, on a background thread.
        with _inline_lock:
            if _inline_pool is None:
                _inline_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merchant-webhooks")
        _inline_pool.submit(_run_inline, name, list(args), kwargs)
        return True
    try:
        options = {"priority": _PRIORITIES[name]} if name in _PRIORITIES else {}
        _task(name).apply_async(args=args, kwargs=kwargs, **options)
    except Exception:
        logger.exception("could not queue %s; the dispatcher's sweep will retry", name)
        return False
    return True
