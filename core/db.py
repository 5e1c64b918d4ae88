"""Database helpers: prepared statements for the hot paths, raw-insert bookkeeping, and the
switch of the one-statement fast paths.

Django binds parameters on the client, so PostgreSQL parses and plans every statement anew;
for the few large statements of the payment paths (a row, its audit link, a notification)
planning costs about as much as running them. These run on a server-side binding cursor that
prepares them: planned once per connection (connections persist, CONN_MAX_AGE), then only
executed. That cursor is wrapped in Django's own cursor wrapper, as `connection.cursor()`
wraps its cursors: `connection.execute_wrapper`, `CaptureQueriesContext` and APM hooks see
these statements like any other, and errors are Django's.
"""

from __future__ import annotations

import functools
import os
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.db import connection, models

# The one-statement fast paths on PostgreSQL (sessions_app.one_statement, audit's link
# statement). ONE_STATEMENT_WRITES=0 at start-up turns them off, so that the locked ORM paths
# run alone (to measure them); the tests flip ONE_STATEMENT to run each suite on both paths.
ONE_STATEMENT = os.environ.get("ONE_STATEMENT_WRITES", "1") != "0"


def one_statement() -> bool:
    """Whether the one-statement fast paths run: on PostgreSQL, unless switched off."""
    return ONE_STATEMENT and connection.vendor == "postgresql"


class _PreparingCursor(psycopg.Cursor):
    """psycopg's server-side binding cursor, preparing the statements it runs (when `prepare`).

    Preparing needs the connection's `prepare_threshold` to be a number (settings set it unless
    DATABASE_PREPARED_STATEMENTS=0); with None, psycopg runs the statement unprepared.
    """

    prepare = True

    def execute(self, query, params=None, *, prepare: bool | None = None, binary: bool | None = None):
        return super().execute(query, params, prepare=self.prepare if prepare is None else prepare, binary=binary)


def fetchone(sql: str, params: list[Any]) -> tuple | None:
    """Run one statement through Django's cursor wrapper and return its first row, prepared on PostgreSQL."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _prepared_cursor():
    """What `connection.cursor()` does (connect, thread check, Django's wrapper with its execute
    wrappers and query log), around a preparing cursor instead of Django's client-side binding one.

    One step is left out on purpose: the per-request health check (CONN_HEALTH_CHECKS), a
    `SELECT 1` round trip before the request's first statement. These statements are often a
    request's only ones (create_session) or two of two (the webhook), so it would add a round
    trip to every such request (measured: about 0.1x of the insert baseline). Without it a
    connection that died between requests fails this request with Django's OperationalError (a
    500: the sender retries), and Django closes the broken connection when the request ends, as
    for any failed query; the next request connects afresh.
    """
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = _PreparingCursor(connection.connection)
    if not connection.queries_logged:
        return connection.make_cursor(raw)
    # Logged (DEBUG, CaptureQueriesContext): run unprepared, because psycopg keeps no query text
    # for a prepared execution and the log would show None. Same statement, same parameters.
    raw.prepare = False
    return connection.make_debug_cursor(raw)


def tables(*models_: type[models.Model]) -> tuple[str, ...]:
    """The quoted table names of `models_`, for the raw statements of the fast paths."""
    quote = connection.ops.quote_name
    return tuple(quote(model._meta.db_table) for model in models_)


@functools.cache
def insert_fields(model: type[models.Model]) -> tuple:
    """The fields an INSERT of `model` writes: every concrete field but an automatic primary key
    (worked out once per model: the hot paths ask on every request)."""
    meta = model._meta
    return tuple(f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField)))


def insert_params(obj: models.Model, fields: tuple | list) -> list[Any]:
    """The values of `fields` as an INSERT of `obj` would send them (defaults and auto_now applied)."""
    params = []
    for field in fields:
        plain = _plain_type(field)
        value = getattr(obj, field.attname) if plain is not None else _NOT_PLAIN
        if value is None and field.null or type(value) is plain and (plain is not datetime or value.tzinfo):
            params.append(value)
        else:
            params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
    return params


_NOT_PLAIN = object()
# Field classes whose save preparation hands PostgreSQL a value of this exact type unchanged
# (Django converts, then converts back to the same value). Integers are not among them: on
# psycopg 3 Django wraps them in a sized type that the prepared statement's plan depends on.
_PLAIN_TYPES: dict[type[models.Field], type] = {
    models.CharField: str, models.TextField: str, models.UUIDField: uuid.UUID,
    models.DecimalField: Decimal, models.BooleanField: bool, models.DateTimeField: datetime,
}
_PREPARATION = ("pre_save", "get_db_prep_save", "get_db_prep_value", "get_prep_value")


@functools.cache
def _plain_type(field: models.Field) -> type | None:
    """The type of the values that `field` would send unchanged, worked out once per field; None
    when every value must go through Django's preparation (another database, a field class that
    prepares its values its own way, a JSON or integer field, an automatic timestamp).

    insert_params sends such values as they are: it saves about 300 Python calls per
    create_session (its session and audit rows), a fifth of the request's own.
    """
    if connection.vendor != "postgresql" or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return None
    for base, plain in _PLAIN_TYPES.items():
        if isinstance(field, base):
            same = all(getattr(type(field), name) is getattr(base, name) for name in _PREPARATION)
            return plain if same else None
    return None


def mark_inserted(obj: models.Model, pk: Any = None) -> None:
    """Make an instance that raw SQL inserted look saved (and give it its primary key)."""
    if pk is not None:
        obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias
