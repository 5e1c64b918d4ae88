import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('keys_app', '0002_account_providers_web3'),
    ]

    operations = [
        migrations.AddField(
            model_name='account',
            name='issued_key_mode',
            field=models.CharField(choices=[('test', 'Test'), ('live', 'Live')], default='test', max_length=4),
        ),
        migrations.AddField(
            model_name='account',
            name='email_key_to_customer',
            field=models.BooleanField(default=False),
        ),
        migrations.CreateModel(
            name='EntitlementKey',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('session_id', models.UUIDField()),
                ('customer_email', models.EmailField(blank=True, default='', max_length=254)),
                ('mode', models.CharField(choices=[('test', 'Test'), ('live', 'Live')], default='test', max_length=4)),
                ('status', models.CharField(choices=[('active', 'Active'), ('revoked', 'Revoked')], default='active', max_length=8)),
                ('key_hash', models.CharField(max_length=64, unique=True)),
                ('prefix', models.CharField(max_length=16)),
                ('last4', models.CharField(max_length=4)),
                ('metadata', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('refunded_at', models.DateTimeField(blank=True, null=True)),
                ('superseded_at', models.DateTimeField(blank=True, null=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='entitlement_keys', to='keys_app.account')),
                ('replaces', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='keys_app.entitlementkey')),
                ('superseded_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='keys_app.entitlementkey')),
            ],
            options={
                'verbose_name': 'customer key',
                'ordering': ['-created_at', '-id'],
                'indexes': [
                    models.Index(fields=['account', '-created_at'], name='ekey_account_created_idx'),
                    models.Index(fields=['session_id'], name='ekey_session_idx'),
                    models.Index(fields=['account', 'customer_email'], name='ekey_account_email_idx'),
                ],
                'constraints': [
                    models.UniqueConstraint(condition=models.Q(('replaces__isnull', True)), fields=('session_id',), name='entitlement_key_issued_once_per_session'),
                ],
            },
        ),
    ]
