"""A function that aborts the statement calling it: lets one statement undo itself on a condition.

PostgreSQL only; other databases take the multi-statement path and never call it.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION payments_abort(reason text) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'payments_abort: ' || reason;
END
$$
"""
DROP = "DROP FUNCTION IF EXISTS payments_abort(text)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0002_web3_charges")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
