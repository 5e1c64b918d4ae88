"""Dashboard views that are not a model's admin page: the accounting exports."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from keys_app.models import Mode
from payments_site.admin_scoping import is_staff_user, merchant_account
from sessions_app import selectors


class _Echo:
    """A file-like object whose write() hands the line back, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    # A spreadsheet would run a cell starting like a formula; accounting opens these files in one.
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def stream_csv(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(v) for v in row])


def export_account_id(request: HttpRequest) -> int | None:
    if is_staff_user(request.user):
        raw = request.GET.get("account", "")
        return int(raw) if raw.isdigit() else None
    account = merchant_account(request.user)
    return account.pk if account else -1


def paid_sessions_csv(request: HttpRequest) -> StreamingHttpResponse:
    mode = request.GET.get("mode")
    mode = mode if mode in Mode.values else None
    rows = selectors.paid_sessions_for_export(account_id=export_account_id(request), mode=mode)
    response = StreamingHttpResponse(stream_csv(selectors.PAID_EXPORT_COLUMNS, rows), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="paid-sessions-{stamp}.csv"'
    return response
