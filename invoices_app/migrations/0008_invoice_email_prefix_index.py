"""PostgreSQL only: a prefix index for searching invoices by the start of the buyer's email, on
the expression Django's istartswith compares. On SQLite the search works by a scan."""

from django.db import migrations

FORWARD = ("CREATE INDEX IF NOT EXISTS invoice_buyer_email_prefix_idx ON invoices_app_invoice "
           "(upper(buyer_email::text) text_pattern_ops)")
BACKWARD = "DROP INDEX IF EXISTS invoice_buyer_email_prefix_idx"


def _run(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)
    return run


class Migration(migrations.Migration):
    dependencies = [("invoices_app", "0007_invoice_list_and_search_indexes")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD), elidable=False)]
