"""Work kept out of the web request without a broker, and whether the workers find work by themselves."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from celery import current_app
from django.db import connection

# One single-thread pool per prefix, made on first use: a process without a broker (the embedded
# default) runs that kind of work one at a time, in order, beside its web requests.
_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _run(fn: Callable[..., object], args: tuple) -> None:
    try:
        fn(*args)
    finally:
        # The thread outlives the request: it must not keep a database connection open.
        connection.close()


def run_in_background(thread_prefix: str, fn: Callable[..., object], *args) -> Future:
    """Run fn(*args) on the single background thread named thread_prefix, closing its connection after."""
    with _pools_lock:
        pool = _pools.get(thread_prefix)
        if pool is None:
            pool = _pools[thread_prefix] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_prefix)
    return pool.submit(_run, fn, args)


def workers_listen() -> bool:
    """Whether workers find new work in PostgreSQL by themselves (PostgreSQL, a Redis broker, not eager)."""
    conf = current_app.conf
    return connection.vendor == "postgresql" and not conf.task_always_eager and conf.broker_url.startswith("redis://")
