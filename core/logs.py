"""Structured logs: a request id on every record, and one JSON object per line in production."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# A caller's id is reused only if it is short and plain, so it cannot forge log structure.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HEADER = "X-Request-ID"

# The attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class RequestIdMiddleware:
    """Accept the caller's X-Request-ID or make one; echo it on the response; tag the logs."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Not reset on the way out: Django logs a 4xx/5xx ("Not Found: /x") after the middleware has
        # returned. request_finished clears it once the response is sent.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def _clear_request_id(**_kwargs) -> None:
    request_id_var.set("-")


request_finished.connect(_clear_request_id, dispatch_uid="core.logs.clear_request_id")


# A task queued while serving a request carries that request's id, so the worker's log lines
# about a payment can be found by the id of the webhook that paid it.
def _add_request_id_to_task(headers=None, **_kwargs) -> None:
    request_id = request_id_var.get()
    if headers is not None and request_id != "-":
        headers.setdefault("request_id", request_id)


def _take_request_id_from_task(task=None, **_kwargs) -> None:
    request_id = getattr(task.request, "request_id", None) if task is not None else None
    if request_id is None and task is not None:
        request_id = (getattr(task.request, "headers", None) or {}).get("request_id")
    request_id_var.set(request_id if isinstance(request_id, str) and _VALID_REQUEST_ID.match(request_id) else "-")


before_task_publish.connect(_add_request_id_to_task, dispatch_uid="core.logs.task_publish")
task_prerun.connect(_take_request_id_from_task, dispatch_uid="core.logs.task_prerun")
task_postrun.connect(_clear_request_id, dispatch_uid="core.logs.task_postrun")


# Secrets that travel in URL paths: access-link tokens and the admin's password-reset tokens.
# One path segment each (an access token; a password reset's user id and token).
_SEGMENT = r"[^\s'\"<>?#/]+"
_TOKEN_IN_PATH = re.compile(rf"(/access/){_SEGMENT}|(/set-password/){_SEGMENT}(?:/{_SEGMENT})?")


def redact(text: str) -> str:
    """Paths with their token replaced: /access/[redacted]."""
    if "/access/" not in text and "/set-password/" not in text:
        return text
    return _TOKEN_IN_PATH.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


class RedactTokensFilter(logging.Filter):
    """Keeps access tokens out of every log line: Django's own request lines ("Service Unavailable:
    /access/<token>/invoice.pdf" at ERROR) and the request object it attaches."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if key in _STANDARD or key.startswith("_") or isinstance(value, (int, float, bool, type(None))):
                continue
            text = value if isinstance(value, str) else str(value)
            if "/access/" in text or "/set-password/" in text:
                setattr(record, key, redact(text))
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
