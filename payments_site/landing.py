"""GET /: what is running here, and where to go next. A plain page, no API."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe


def running_mode() -> dict[str, str | bool]:
    """The parts this process runs on, named without hosts, paths or credentials."""
    embedded_db = connection.vendor == "sqlite"
    in_process = bool(settings.CELERY_TASK_ALWAYS_EAGER)
    return {
        "embedded": embedded_db and in_process,
        "database": "SQLite (embedded)" if embedded_db else "PostgreSQL" if connection.vendor == "postgresql"
        else connection.vendor,
        "tasks": "in-process, in the web server" if in_process else "Celery workers on Redis",
        "email": "printed to the console" if not settings.EMAIL_HOST else "sent over SMTP",
        "development": bool(settings.ALLOW_DEBUG),
    }


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "landing.html", {"mode": running_mode(), "base_url": settings.PUBLIC_BASE_URL})
