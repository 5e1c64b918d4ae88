"""The hand-off from a paid session to the fulfilment workers, through PostgreSQL.

The transaction that pays a session also NOTIFYs it (sessions_app.signals.SESSION_PAID_CHANNEL):
no extra round trip for the web request, and delivered if and only if the payment commits. One
relay per database, in whichever Celery worker holds its advisory lock, LISTENs and publishes
one `fulfil_sessions` task per batch of notifications, so under load one publish carries many
payments.

A notification nobody hears is not lost work, and it does not wait for the safety net either:
- a relay that takes over first LISTENs, then looks back over the recent payments and hands on
  every one whose fulfilment is unfinished and that no live run holds (claims.py): what was
  paid while no worker listened (a deploy, a restart, a crash) is fulfilled within seconds of
  the first worker coming up;
- while it listens it also looks, every few seconds, for runs that began and stopped dead (a
  worker killed mid-fulfilment releases its claim with its connection) and hands them on.
The beat safety net stays as the backstop for everything older.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

from core.background import workers_listen
from invoices_app.selectors import relay_look_back_sql, relay_stalled_sql
from invoices_app.tasks import fulfil_sessions
from sessions_app.signals import SESSION_PAID_CHANNEL

logger = logging.getLogger(__name__)

# pg_try_advisory_lock key of the relay: one listener per database publishes (any number of
# workers may run; the others wait to take over).
RELAY_LOCK = 0x7061795F72656C61  # "pay_rela"


def relay_active() -> bool:
    """Whether paid sessions announced through PostgreSQL reach the workers by the relay."""
    return workers_listen()


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
        self.next_sweep = 0.0

    @classmethod
    def take(cls, conn: psycopg.Connection) -> Listener | None:
        """Become the database's relay if no other listener is (one per database publishes)."""
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", [RELAY_LOCK]).fetchone()[0]:
            return None
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(SESSION_PAID_CHANNEL)))
        listener = cls(conn)
        # Listening first, then looking back: a payment committed in between is both heard and
        # found, and fulfilment runs twice at worst, which its steps make harmless.
        listener.resume(look_back=True)
        return listener

    def resume(self, *, look_back: bool) -> int:
        """Hand on what no live run holds: recent unfinished payments, or runs that stopped dead."""
        if look_back:
            handed, cursor = 0, (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
            # Bounded: a larger backlog than this is the safety net's.
            for _ in range(settings.FULFILMENT_RELAY_RESUME_PAGES):
                rows = self.conn.execute(relay_look_back_sql(), [settings.FULFILMENT_RELAY_LOOK_BACK_SECONDS,
                                                                 *cursor, settings.FULFILMENT_RELAY_BATCH]).fetchall()
                handed += self._hand_on([pk for pk, _ in rows])
                if len(rows) < settings.FULFILMENT_RELAY_BATCH:
                    break
                cursor = (rows[-1][1], rows[-1][0])
        else:
            rows = self.conn.execute(relay_stalled_sql(), [settings.FULFILMENT_STALL_SECONDS,
                                                           settings.FULFILMENT_STALL_REHAND_SECONDS,
                                                           settings.FULFILMENT_RELAY_BATCH]).fetchall()
            handed = self._hand_on([pk for (pk,) in rows])
        if handed:
            logger.info("fulfilment relay handed on %d unfinished sessions (%s)", handed,
                        "look back" if look_back else "stopped runs")
        self.next_sweep = time.monotonic() + settings.FULFILMENT_STALL_SWEEP_SECONDS
        return handed

    @staticmethod
    def _hand_on(session_ids: list) -> int:
        if session_ids:
            # Ahead of the queue: these have waited longest already (settings.CELERY_TASK_DEFAULT_PRIORITY).
            fulfil_sessions.apply_async(args=[[{"session_id": str(pk), "request_id": "relay-resume"}
                                               for pk in session_ids]], priority=0)
        return len(session_ids)

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
        if time.monotonic() >= self.next_sweep:
            self.resume(look_back=False)
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
