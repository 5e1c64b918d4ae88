from django.db import migrations


class Migration(migrations.Migration):
    """Holder accounts are gone (0004): drop the kind, and the buyer-key column of merchant keys."""

    dependencies = [
        ('keys_app', '0004_holder_accounts_removed'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='account',
            name='keys_app_ac_kind_f5d556_idx',
        ),
        migrations.RemoveField(
            model_name='account',
            name='kind',
        ),
        migrations.RemoveField(
            model_name='apikey',
            name='source_session_id',
        ),
    ]
