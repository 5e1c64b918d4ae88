"""The hand-off from a paid webhook to the fulfilment workers.

A web request that pays a session pushes one small item onto a Redis list: one LPUSH, a
fraction of what publishing a Celery task costs (building the message, the producer pool,
kombu's envelope). A relay thread in each Celery worker takes the items in batches and
publishes one `fulfil_sessions` task per batch, so under load one publish carries many
payments. Nothing here is the only record: a paid session without a finished fulfilment is
found again by the beat safety net, exactly as when the broker is down.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _app():
    from payments_site.celery import app

    return app


def pending_key() -> str:
    """The list beside the Celery queue the workers consume (one per queue, so tests can share a Redis)."""
    return f"{_app().conf.task_default_queue}.fulfilment"


def _client(url: str) -> redis.Redis:
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        return client


def relay_push(*, session_id: str, request_id: str) -> None:
    """Hand a paid session to the workers (raises RedisError/OSError when Redis is down)."""
    item = json.dumps({"session_id": session_id, "request_id": request_id}, separators=(",", ":"))
    _client(_app().conf.broker_url).lpush(pending_key(), item)


def relay_once(*, client: redis.Redis, key: str, timeout: float = 1.0) -> int:
    """Wait up to `timeout` s for paid sessions; publish what arrived as one task. Returns the count."""
    from invoices_app.tasks import fulfil_sessions

    first = client.brpop([key], timeout=timeout)
    if first is None:
        return 0
    raw = [first[1], *(client.rpop(key, settings.FULFILMENT_RELAY_BATCH - 1) or [])]
    items: list[dict[str, Any]] = []
    for value in raw:
        try:
            items.append(json.loads(value))
        except ValueError:
            logger.error("fulfilment relay dropped an unreadable item", extra={"item": repr(value)[:200]})
    if not items:
        return 0
    try:
        fulfil_sessions.delay(items)
    except Exception:
        # The broker is this same Redis: put them back for the next round (the safety net
        # finds them anyway if this fails too).
        logger.exception("fulfilment relay could not publish %d sessions; returned them to the list", len(items))
        client.rpush(key, *raw)
        raise
    return len(items)


class Relay(threading.Thread):
    """The loop a worker runs beside its pool; stopped with the worker."""

    def __init__(self, *, url: str, key: str) -> None:
        super().__init__(name="fulfilment-relay", daemon=True)
        self.url, self.key = url, key
        self._stop_event = threading.Event()

    def run(self) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        while not self._stop_event.is_set():
            try:
                relay_once(client=client, key=self.key, timeout=1.0)
            except Exception:
                logger.warning("fulfilment relay: Redis unavailable, retrying", exc_info=True)
                self._stop_event.wait(1.0)
        client.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
