"""Dashboard views that are not a model's admin page: the accounting exports."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from core.admin_scoping import viewer_account_id
from core.formatting import amount_text
from invoices_app.selectors import (
    INVOICE_EXPORT_COLUMNS,
    REFUND_EXPORT_COLUMNS,
    invoices_for_export,
    refunds_for_export,
)
from keys_app.models import Mode
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


def _csv_response(stream: Iterator[str], name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.now():%Y%m%d}.csv"'
    return response


def paid_sessions_csv(request: HttpRequest) -> StreamingHttpResponse:
    mode = request.GET.get("mode")
    mode = mode if mode in Mode.values else None
    rows = selectors.paid_sessions_for_export(account_id=viewer_account_id(request), mode=mode)
    # amount is column 2, currency column 3
    rows = ((r[0], r[1], amount_text(r[2], r[3]), *r[3:]) for r in rows)
    return _csv_response(stream_csv(selectors.PAID_EXPORT_COLUMNS, rows), "paid-sessions")


def invoices_csv(request: HttpRequest) -> StreamingHttpResponse:

    rows = invoices_for_export(account_id=viewer_account_id(request))
    # net (4), vat (6) and gross (7) in the currency (3) of the invoice
    rows = ((*r[:4], amount_text(r[4], r[3]), r[5], amount_text(r[6], r[3]), amount_text(r[7], r[3]), *r[8:]) for r in rows)
    return _csv_response(stream_csv(INVOICE_EXPORT_COLUMNS, rows), "invoices")


def refunds_csv(request: HttpRequest) -> StreamingHttpResponse:
    mode = request.GET.get("mode")
    rows = refunds_for_export(account_id=viewer_account_id(request), mode=mode if mode in Mode.values else None)
    # amount (5) in its currency (6)
    rows = ((*r[:5], amount_text(r[5], r[6]), *r[6:]) for r in rows)
    return _csv_response(stream_csv(REFUND_EXPORT_COLUMNS, rows), "refunds")
