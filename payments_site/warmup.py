"""Import what the first request would otherwise import, before gunicorn forks its workers.

With `gunicorn --preload` the application is loaded once in the master and every worker,
including each one that replaces a recycled worker (`--max-requests`), starts as a fork of it.
Without this, the first requests of every new worker paid for importing the URLconf, every view,
DRF and the task modules: 50-80 ms, which showed up as the p99 of every path. No database or
Redis connection is opened here: they must not be shared across the fork.
"""

from __future__ import annotations

import gc
import importlib


def warm() -> None:
    from django.urls import get_resolver
    from django.utils import translation

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view it names
    translation.gettext("Not Found")  # loads the translation catalogues
    for module in ("rest_framework.renderers", "rest_framework.parsers", "core.parsers",
                   "keys_app.authentication", "sessions_app.providers.stripe_provider"):
        importlib.import_module(module)
    try:  # the fulfilment tasks, queued on commit of a paid webhook
        importlib.import_module("invoices_app.tasks")
    except ImportError:
        pass
    # Everything loaded so far lives as long as the process. Moved out of the collector's reach,
    # it is no longer walked by every full collection: in a worker that walk was a 40 ms pause
    # every few hundred requests, the largest part of create_session's p99. (It also keeps the
    # forked workers from writing to, and so copying, the pages they share with the master.)
    gc.collect()
    gc.freeze()
