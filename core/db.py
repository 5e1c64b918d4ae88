"""Statements the hot paths run on every request, prepared once per database connection.

Django binds parameters on the client, so PostgreSQL parses and plans every statement anew;
for the few large statements of the payment paths (a row, its audit link, a notification)
planning costs about as much as running them. These go through a server-side binding cursor
with `prepare=True`: planned once per connection (connections persist, CONN_MAX_AGE), then
only executed. Errors are Django's, as from any other cursor.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from django.db import connection, models

# The one-statement fast paths on PostgreSQL (the webhook's move, session_create, audit's link).
# ONE_STATEMENT_WRITES=0 turns them off, so the locked ORM paths run alone (to measure them);
# the tests flip ONE_STATEMENT to run both paths.
ONE_STATEMENT = os.environ.get("ONE_STATEMENT_WRITES", "1") != "0"


def one_statement() -> bool:
    """Whether the one-statement fast paths run: on PostgreSQL, unless switched off."""
    return ONE_STATEMENT and connection.vendor == "postgresql"


def fetchone(sql: str, params: list[Any]) -> tuple | None:
    """Run one statement and return its first row, prepared on PostgreSQL."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def insert_params(obj: models.Model, fields: list) -> list[Any]:
    """The values of `fields` as an INSERT of `obj` would send them (defaults and auto_now applied)."""
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def mark_inserted(obj: models.Model, pk: Any = None) -> None:
    """Make an instance that raw SQL inserted look saved (and give it its primary key)."""
    if pk is not None:
        obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias
