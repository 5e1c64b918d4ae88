import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('invoices_app', '0001_initial'),
        ('keys_app', '0003_entitlement_keys'),
    ]

    operations = [
        migrations.AddField(
            model_name='keyreveal',
            name='entitlement_key',
            field=models.OneToOneField(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='reveal', to='keys_app.entitlementkey'),
        ),
        migrations.AddField(
            model_name='keyreveal',
            name='emailed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='accesslinkuse',
            name='action',
            field=models.CharField(choices=[('view', 'Viewed the page'), ('pdf', 'Downloaded the PDF'), ('reveal', 'Revealed the key'), ('reveal_refused', 'Asked for an already revealed key'), ('rotate', 'Rotated the key')], max_length=16),
        ),
    ]
