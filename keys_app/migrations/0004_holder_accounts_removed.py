"""The holder accounts go: their keys are entitlement keys of the selling merchants now
(invoices_app 0003). A holder that created sessions of its own (its key let it act as a
merchant) cannot be deleted without them: it stays, as a merchant account, with its keys revoked."""

from django.db import migrations
from django.db.models import ProtectedError, RestrictedError
from django.utils import timezone


def remove_holder_accounts(apps, schema_editor):
    Account = apps.get_model("keys_app", "Account")
    ApiKey = apps.get_model("keys_app", "ApiKey")
    EntitlementKey = apps.get_model("keys_app", "EntitlementKey")
    holders = Account.objects.filter(kind="holder")
    converted = EntitlementKey.objects.values("key_hash")
    ApiKey.objects.filter(account__in=holders, key_hash__in=converted).delete()
    for holder in holders:
        try:
            holder.delete()
        except (ProtectedError, RestrictedError):
            ApiKey.objects.filter(account=holder, status="active").update(status="revoked", revoked_at=timezone.now())
            Account.objects.filter(pk=holder.pk).update(kind="merchant")


class Migration(migrations.Migration):

    dependencies = [
        ('keys_app', '0003_entitlement_keys'),
        ('invoices_app', '0004_key_reveal_drop_api_key'),
    ]

    operations = [
        migrations.RunPython(remove_holder_accounts, migrations.RunPython.noop),
    ]
