"""The dispatcher: new events become deliveries, and deliveries due become tasks, without a publish
in the web request that wrote the event.

Like the fulfilment relay (invoices_app/relay.py), it runs beside each worker's pool and one of
them at a time works (an advisory lock); it publishes one task per batch of an endpoint's
deliveries. It polls: the new events wait in a small partial index (event_to_fan_out_idx), so a
look costs one index probe, and the web request pays nothing beyond its event row. The beat task
deliveries_dispatch runs the same look as a backstop.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection

from events_app import handoff
from events_app.delivery import deliveries_take_due
from events_app.fan_out import events_fan_out

logger = logging.getLogger(__name__)

DISPATCH_LOCK = 0x77685F6469737061  # "wh_dispa"
# Deliveries of one endpoint that one task sends, one after the other.
BATCH = 20


# Events fanned out, and deliveries handed on, per statement: a full one means more are waiting.
FAN_OUT_LIMIT = 500
TAKE_LIMIT = 200


def dispatch_once() -> tuple[int, bool]:
    """Fan out new events and hand on the deliveries due.

    Returns the deliveries handed on, and whether more are waiting (a batch came back full).
    """
    handed = 0
    while True:
        done, fresh = events_fan_out(limit=FAN_OUT_LIMIT)
        handed += _queue(fresh)
        if done < FAN_OUT_LIMIT:
            break
    due = deliveries_take_due(limit=TAKE_LIMIT)
    handed += _queue(due)
    return handed, sum(len(ids) for _, ids in due) >= TAKE_LIMIT


def _queue(groups: list[tuple[str, list[int]]]) -> int:
    """Publish deliveries marked as handed on, a task per batch of an endpoint's; returns those published."""
    handed = 0
    for _endpoint_id, ids in groups:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            # On a broker failure they stay marked until MERCHANT_WEBHOOK_REQUEUE_SECONDS, then go again.
            if handoff.queue("deliveries_send", chunk):
                handed += len(chunk)
    return handed


class Dispatcher(threading.Thread):
    """The loop a worker runs beside its pool; stopped with the worker."""

    def __init__(self) -> None:
        super().__init__(name="merchant-webhooks-dispatcher", daemon=True)
        self._stop_event = threading.Event()

    @staticmethod
    def wanted() -> bool:
        """Whether this worker should run one (PostgreSQL with Redis; otherwise events are queued on commit)."""
        return handoff.dispatcher_active()

    def _take(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [DISPATCH_LOCK])
            return bool(cursor.fetchone()[0])

    def run(self) -> None:
        interval = settings.MERCHANT_WEBHOOK_DISPATCH_INTERVAL_MS / 1000
        held = False
        while not self._stop_event.is_set():
            try:
                held = held or self._take()
                if not held:
                    self._stop_event.wait(1.0)  # another worker dispatches; take over if it goes
                    continue
                # A look costs about the same for one event as for a hundred, so under a steady
                # stream the loop still waits its interval and takes what gathered meanwhile; it
                # goes again at once only while a backlog remains.
                _handed, more = dispatch_once()
                if not more:
                    self._stop_event.wait(interval)
            except Exception:
                logger.warning("merchant webhook dispatcher interrupted; restarting", exc_info=True)
                held = False
                connection.close()  # the lock goes with the connection
                self._stop_event.wait(1.0)
        connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
