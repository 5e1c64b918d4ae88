from __future__ import annotations

from celery import shared_task

from sessions_app.crypto.chain import ChainMismatch, ChainUnavailable
from sessions_app.crypto.polling import web3_poll as poll


@shared_task(ignore_result=True)
def web3_poll() -> dict[str, int] | None:

    try:
        return poll()
    except (ChainUnavailable, ChainMismatch):
        # Nothing is decided without a trustworthy chain; the next run tries again.
        return None
