"""The hand-off from a paid session to the fulfilment workers, through PostgreSQL.

The transaction that pays a session also NOTIFYs it (sessions_app.signals.SESSION_PAID_CHANNEL):
no extra round trip for the web request, and delivered if and only if the payment commits. One
relay per database, in whichever Celery worker holds its advisory lock, LISTENs and publishes
one `fulfil_sessions` task per batch of notifications, so under load one publish carries many
payments. A notification nobody hears (no worker running) is not lost work: a paid session
without a finished fulfilment is found again by the beat safety net.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

from sessions_app.signals import SESSION_PAID_CHANNEL

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key of the relay: one listener per database publishes (any number of
# workers may run; the others wait to take over).
RELAY_LOCK = 0x7061795F72656C61  # "pay_rela"


def relay_active() -> bool:
    """Whether paid sessions announced through PostgreSQL reach the workers by the relay."""
    from payments_site.celery import app

    return connection.vendor == "postgresql" and not app.conf.task_always_eager and \
        app.conf.broker_url.startswith("redis://")


def connect() -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(dbname=params["NAME"], user=params["USER"] or None, password=params["PASSWORD"] or None,
                           host=params["HOST"] or None, port=params["PORT"] or None, autocommit=True,
                           connect_timeout=5)


class Listener:
    """The database's relay: a LISTENing connection, and notifications heard but not yet sent."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.backlog: deque[str] = deque()

    @classmethod
    def take(cls, conn: psycopg.Connection) -> Listener | None:
        """Become the database's relay if no other listener is (one per database publishes)."""
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK]).fetchone()[0]:
            return None
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(SESSION_PAID_CHANNEL)))
        return cls(conn)

    def _hear(self, timeout: float) -> None:
        batch = settings.FULFILMENT_RELAY_BATCH
        if len(self.backlog) >= batch:
            return
        # Wait for the first only when nothing is waiting to be sent; then gather for a short
        # window, so a busy minute becomes a few publishes rather than one per payment. psycopg
        # may hand over more than asked: the backlog keeps them for the next round.
        self.backlog.extend(n.payload for n in self.conn.notifies(timeout=0 if self.backlog else timeout,
                                                                  stop_after=1))
        if self.backlog and len(self.backlog) < batch:
            self.backlog.extend(n.payload for n in self.conn.notifies(
                timeout=settings.FULFILMENT_RELAY_WINDOW_MS / 1000, stop_after=batch - len(self.backlog)))

    def relay_once(self, *, timeout: float = 1.0) -> int:
        """Wait up to `timeout` s for paid sessions; publish up to a batch as one task. Returns the count."""
        from invoices_app.tasks import fulfil_sessions

        self._hear(timeout)
        items: list[dict[str, Any]] = []
        while self.backlog and len(items) < settings.FULFILMENT_RELAY_BATCH:
            payload = self.backlog.popleft()
            try:
                items.append(json.loads(payload))
            except ValueError:
                logger.error("fulfilment relay dropped an unreadable notification", extra={"payload": payload[:200]})
        if items:
            fulfil_sessions.delay(items)
        return len(items)


class Relay(threading.Thread):
    """The loop a worker runs beside its pool; stopped with the worker."""

    def __init__(self) -> None:
        super().__init__(name="fulfilment-relay", daemon=True)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with connect() as conn:
                    listener = Listener.take(conn)
                    if listener is None:
                        self._stop_event.wait(1.0)  # another worker relays; take over if it goes
                        continue
                    logger.info("fulfilment relay listening")
                    while not self._stop_event.is_set():
                        listener.relay_once(timeout=1.0)
            except Exception:
                # Database or broker down: what was not published is found by the safety net.
                logger.warning("fulfilment relay interrupted; restarting", exc_info=True)
                self._stop_event.wait(1.0)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
