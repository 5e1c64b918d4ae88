"""Celery shells for the session lifecycle (scheduled by beat)."""

from __future__ import annotations

from celery import shared_task

from sessions_app.services import session_expire_overdue
from sessions_app.summaries import summary_refresh


@shared_task(acks_late=True, ignore_result=True)
def sessions_expire_overdue() -> int:
    return session_expire_overdue()


@shared_task(acks_late=True, ignore_result=True)
def sessions_summary_refresh() -> int:
    return summary_refresh().rows
