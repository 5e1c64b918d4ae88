"""payments_abort() raises its own SQLSTATE, PA001, so that a caller recognises its own abort
by the code alone (0003 raised P0001, PL/pgSQL's generic code, told apart by message text).

PostgreSQL only; other databases take the locked path and never call it.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION payments_abort(reason text) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'PA001', MESSAGE = 'payments_abort: ' || reason;
END
$$
"""
# Back to 0003's function.
PREVIOUS = """
CREATE OR REPLACE FUNCTION payments_abort(reason text) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'payments_abort: ' || reason;
END
$$
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0006_late_payments_and_attempts")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
