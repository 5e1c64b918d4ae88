"""Dashboard views that are not a model's admin page: the accounting exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime

from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
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


# Rows are handed to the server in blocks of about this size: one write per row would cost more
# than the row.
BLOCK_BYTES = 256 * 1024


def stream_csv(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
        if buffer.tell() >= BLOCK_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def stream_copy(header: Iterable[str], sql: str, params: list) -> Iterator[bytes]:
    """PostgreSQL writes the CSV itself (COPY ... TO STDOUT): rows stream from the server as they
    are read, in constant memory, at several times the rate of building them in Python."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(header)
    block, size = [buffer.getvalue().encode()], 0
    statement = connection.ops.compose_sql(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params)
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for data in copy:
            block.append(data)
            size += len(data)
            if size >= BLOCK_BYTES:
                yield b"".join(block)
                block, size = [], 0
    yield b"".join(block)


def _csv_response(stream: Iterator, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.now():%Y%m%d}.csv"'
    return response


def _export_scope(request: HttpRequest) -> dict:
    """An export's filters from the query: the viewer's account, `mode` (anything else: both) and
    the UTC days `from`..`to`. A malformed day raises ValueError with the answer's text."""
    mode = request.GET.get("mode")
    return {"account_id": viewer_account_id(request), "mode": mode if mode in Mode.values else None,
            "start": _day(request, "from"), "end": _day(request, "to")}


def _day(request: HttpRequest, name: str) -> date | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"date_invalid: {name} must be a date, YYYY-MM-DD.") from None


def paid_sessions_csv(request: HttpRequest) -> HttpResponse:
    try:
        scope = _export_scope(request)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    if connection.vendor == "postgresql":
        response = _csv_response(stream_copy(selectors.PAID_EXPORT_COLUMNS,
                                             *selectors.paid_sessions_export_sql(**scope)), "paid-sessions")
    else:
        rows = selectors.paid_sessions_for_export(**scope)
        # amount is column 2, currency column 3
        rows = ((r[0], r[1], amount_text(r[2], r[3]), *r[3:]) for r in rows)
        response = _csv_response(stream_csv(selectors.PAID_EXPORT_COLUMNS, rows), "paid-sessions")
    # A size hint for a large export (a streamed response has no length): rows, from the summary.
    response["X-Export-Rows"] = str(selectors.paid_count(**scope))
    return response


def invoices_csv(request: HttpRequest) -> HttpResponse:
    try:
        scope = _export_scope(request)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    rows = invoices_for_export(**scope)
    # net (4), vat (6) and gross (7) in the currency (3) of the invoice
    rows = ((*r[:4], amount_text(r[4], r[3]), r[5], amount_text(r[6], r[3]), amount_text(r[7], r[3]), *r[8:]) for r in rows)
    return _csv_response(stream_csv(INVOICE_EXPORT_COLUMNS, rows), "invoices")


def refunds_csv(request: HttpRequest) -> StreamingHttpResponse:
    mode = request.GET.get("mode")
    rows = refunds_for_export(account_id=viewer_account_id(request), mode=mode if mode in Mode.values else None)
    # amount (5) in its currency (6)
    rows = ((*r[:5], amount_text(r[5], r[6]), *r[6:]) for r in rows)
    return _csv_response(stream_csv(REFUND_EXPORT_COLUMNS, rows), "refunds")
