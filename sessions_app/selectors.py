from __future__ import annotations

import functools
import uuid
from datetime import date, timedelta

from django.db import connection
from django.db.models import Q, QuerySet, Sum

from audit.models import AuditEvent
from core import currencies, db
from keys_app.models import Account
from sessions_app import summaries
from sessions_app.models import DailySummary, LatePayment, PaymentSession, Status
from sessions_app.signals import test_session_delivery_shown


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def session_list(*, account: Account, status: str | None = None) -> QuerySet[PaymentSession]:
    qs = PaymentSession.objects.filter(account=account)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def test_delivery_shown(*, session: PaymentSession) -> dict:
    """What a test session's receipt would have shown when it went to the log instead (fulfilment answers)."""
    shown: dict = {}
    for _, answer in test_session_delivery_shown.send(sender=None, session=session):
        shown.update(answer or {})
    return shown


def session_get_for_account(*, account: Account, session_id: str) -> PaymentSession | None:
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.filter(account=account, pk=pk).first()


def session_get_public(*, session_id: str) -> PaymentSession | None:
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.select_related("account").filter(pk=pk).first()


def session_get(*, session_id: uuid.UUID) -> PaymentSession | None:
    """One session, every field, by a statement prepared once per connection (the webhook path)."""
    fields = PaymentSession._meta.concrete_fields
    row = db.fetchone(_session_select_sql(), [session_id])
    if row is None:
        return None
    values = [f.from_db_value(v, None, connection) if v is not None and hasattr(f, "from_db_value") else v
              for f, v in zip(fields, row, strict=True)]
    return PaymentSession.from_db(connection.alias, [f.attname for f in fields], values)


@functools.cache
def _session_select_sql() -> str:
    quote = connection.ops.quote_name
    meta = PaymentSession._meta
    return (f"SELECT {', '.join(quote(f.column) for f in meta.concrete_fields)} "  # noqa: S608 - names are ours
            f"FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s")


def late_payments_of(*, session: PaymentSession) -> QuerySet[LatePayment]:
    return LatePayment.objects.filter(session=session).order_by("received_at", "id")


def session_status_get(*, session_id: str) -> dict | None:
    """The public status: no customer data, one indexed read."""
    pk = parse_uuid(session_id)
    if pk is None:
        return None
    return PaymentSession.objects.filter(pk=pk).values("id", "status", "paid_at", "refund_status").first()


EMAIL_SEARCH_MIN = 3  # a trigram index needs three characters to narrow anything


def session_search(queryset: QuerySet[PaymentSession], term: str) -> QuerySet[PaymentSession]:
    """Sessions whose id, client reference or provider reference is `term`, or whose customer email
    contains it (3 characters or more)."""
    term = term.strip()
    if not term:
        return queryset
    session_id = parse_uuid(term)
    if session_id is not None:
        return queryset.filter(pk=session_id)
    match = Q(client_reference_id=term) | Q(provider_reference=term)
    if len(term) >= EMAIL_SEARCH_MIN:
        match |= Q(customer_email__icontains=term)
    return queryset.filter(match)


def paid_count(*, account_id: int | None, mode: str | None, start: date | None = None,
               end: date | None = None) -> int:
    """About how many paid sessions an export of these UTC days (inclusive) holds: one read of the
    daily summary, so the sessions paid in the last minutes are not in it."""
    days = DailySummary.objects.all()
    if account_id is not None:
        days = days.filter(account_id=account_id)
    if mode:
        days = days.filter(mode=mode)
    if start:
        days = days.filter(day__gte=start)
    if end:
        days = days.filter(day__lte=end)
    return days.aggregate(n=Sum("count"))["n"] or 0


PAID_EXPORT_COLUMNS = ("session_id", "paid_at", "amount", "currency", "mode", "provider", "provider_reference",
                       "customer_email", "customer_name", "client_reference_id", "description", "merchant_id")


def _paid_for_export(*, account_id: int | None, mode: str | None, start: date | None, end: date | None):
    qs = PaymentSession.objects.filter(status=Status.PAID)
    if account_id is not None:
        qs = qs.filter(account_id=account_id)
    if mode:
        qs = qs.filter(mode=mode)
    if start:
        qs = qs.filter(paid_at__gte=summaries.day_start(start))
    if end:
        qs = qs.filter(paid_at__lt=summaries.day_start(end + timedelta(days=1)))
    return qs.order_by("paid_at", "id")


def paid_sessions_for_export(*, account_id: int | None, mode: str | None = None, start: date | None = None,
                             end: date | None = None):
    """Rows for the accounting export (paid on UTC days start..end, inclusive), read through a
    server-side cursor in chunks: the table may be larger than memory."""
    return (_paid_for_export(account_id=account_id, mode=mode, start=start, end=end)
            .values_list("id", "paid_at", "amount", "currency", "mode", "provider", "provider_reference",
                         "customer_email", "customer_name", "client_reference_id", "description", "account_id")
            .iterator(chunk_size=5000))


# A cell a spreadsheet would run as a formula gets a leading quote (the rule of the Python
# export in dashboard/views.py; a test holds the two together). An empty text is NULL, which
# COPY writes as an empty unquoted cell, as csv.writer does.
_TEXT = ("NULLIF(CASE WHEN left({c}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN chr(39) || {c} "
         "ELSE {c} END, '')")
# datetime.isoformat() in UTC: microseconds only when there are any.
_UTC_ISO = "replace(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), '.000000+', '+')"


def _exponent_case(column: str) -> str:
    """The currency's exponent, as a CASE over the codes whose exponent is not 2."""
    by_exponent: dict[int, list[str]] = {}
    for code, e in sorted(currencies.EXPONENTS.items()):
        if e != 2:
            by_exponent.setdefault(e, []).append(code)
    arms = " ".join(f"WHEN {column} IN ({', '.join(repr(c) for c in codes)}) THEN {e}"
                    for e, codes in sorted(by_exponent.items()))
    return f"(CASE {arms} ELSE 2 END)"


def paid_sessions_export_sql(*, account_id: int | None, mode: str | None = None, start: date | None = None,
                             end: date | None = None) -> tuple[str, list]:
    """The rows of `paid_sessions_for_export`, formatted as the export writes them, as one
    PostgreSQL SELECT for `COPY (...) TO STDOUT`: the database streams the CSV."""
    qs = _paid_for_export(account_id=account_id, mode=mode, start=start, end=end).values("id")
    inner_sql, params = qs.query.sql_with_params()
    where = inner_sql[inner_sql.index(" WHERE "):inner_sql.index(" ORDER BY ")]
    (table,) = db.tables(PaymentSession)
    # Amounts are positive and stored at their currency's precision (create_session refuses
    # more decimals), so round() to the exponent writes what Decimal.quantize writes.
    amount = f"round({table}.amount, {_exponent_case(f'{table}.currency')})::text"
    cells = [f"{table}.id::text", _UTC_ISO.format(c=f"{table}.paid_at"), amount]
    # currency, mode and provider are codes of ours (never a formula); the rest is free text.
    cells += [f"{table}.{name}" for name in ("currency", "mode")]
    cells.append(f"NULLIF({table}.provider, '')")
    cells += [_TEXT.format(c=f"{table}.{name}") for name in (
        "provider_reference", "customer_email", "customer_name", "client_reference_id", "description")]
    cells.append(f"{table}.account_id")
    sql = (f"SELECT {', '.join(cells)} FROM {table}{where} "  # noqa: S608 - names and codes are ours
           f"ORDER BY {table}.paid_at, {table}.id")
    return sql, list(params)


def session_timeline(*, session_id: uuid.UUID):
    """The audit rows about one session, oldest first."""

    return (AuditEvent.objects.filter(subject_type="payment_session", subject_id=str(session_id))
            .order_by("created_at", "seq"))
