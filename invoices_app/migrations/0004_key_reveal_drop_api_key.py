import django.db.models.deletion
from django.db import migrations, models


def drop_unconverted_reveals(apps, schema_editor):
    # A reveal whose key could not be converted (its session is gone) can never be revealed.
    apps.get_model("invoices_app", "KeyReveal").objects.filter(entitlement_key__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('invoices_app', '0003_holder_keys_to_entitlement_keys'),
    ]

    operations = [
        migrations.RunPython(drop_unconverted_reveals, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='keyreveal',
            name='api_key',
        ),
        migrations.AlterField(
            model_name='keyreveal',
            name='entitlement_key',
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='reveal', to='keys_app.entitlementkey'),
        ),
    ]
