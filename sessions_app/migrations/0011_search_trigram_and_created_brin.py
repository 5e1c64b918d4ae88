"""PostgreSQL only: the trigram index for searching customer emails by any part, and a BRIN
index on created_at for the summary job's look at recent days. On SQLite (the embedded run)
both are skipped: search there still works, by a scan."""

from django.db import migrations

FORWARD = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # On the expression Django's icontains compares (UPPER(col::text) LIKE UPPER(%s)).
    "CREATE INDEX IF NOT EXISTS session_email_trgm_idx ON sessions_app_paymentsession "
    "USING gin ((upper(customer_email::text)) gin_trgm_ops)",
    # BRIN: a few pages for the whole table and next to nothing per insert; rows arrive in
    # created_at order, so block ranges stay tight.
    "CREATE INDEX IF NOT EXISTS session_created_brin_idx ON sessions_app_paymentsession "
    "USING brin (created_at)",
)
BACKWARD = (
    "DROP INDEX IF EXISTS session_created_brin_idx",
    "DROP INDEX IF EXISTS session_email_trgm_idx",
)


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)
    return run


class Migration(migrations.Migration):
    dependencies = [("sessions_app", "0010_daily_summary_and_search_indexes")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
