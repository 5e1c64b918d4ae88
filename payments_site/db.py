"""Statements the hot paths run on every request, prepared once per database connection.

Django binds parameters on the client, so PostgreSQL parses and plans every statement anew;
for the few large statements of the payment paths (a row, its audit link, a notification)
planning costs about as much as running them. These go through a server-side binding cursor
with `prepare=True`: planned once per connection (connections persist, CONN_MAX_AGE), then
only executed. Errors are Django's, as from any other cursor.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


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
