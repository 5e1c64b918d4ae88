from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0004_leaner_session_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='paymentsession',
            name='entitlement',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
