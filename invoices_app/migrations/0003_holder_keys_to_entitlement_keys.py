"""Buyers' keys were sk_ keys of "holder" accounts; they become entitlement keys of the merchant
that sold them (the session's account), rotated successors included, and the pending reveals
follow them. The holder keys and accounts themselves go in keys_app 0004, once no reveal points
at them any more.

Its own migration: PostgreSQL refuses to alter a table in the transaction that changed its rows.
"""

from django.db import migrations


def holder_keys_to_entitlement_keys(apps, schema_editor):
    Account = apps.get_model("keys_app", "Account")
    ApiKey = apps.get_model("keys_app", "ApiKey")
    EntitlementKey = apps.get_model("keys_app", "EntitlementKey")
    PaymentSession = apps.get_model("sessions_app", "PaymentSession")
    KeyReveal = apps.get_model("invoices_app", "KeyReveal")

    holder_emails = dict(Account.objects.filter(kind="holder").values_list("pk", "email"))
    keys = {key.pk: key for key in ApiKey.objects.filter(account_id__in=holder_emails)}
    converted = {}
    for root in sorted((k for k in keys.values() if k.source_session_id), key=lambda k: (k.created_at, k.pk)):
        session = PaymentSession.objects.filter(pk=root.source_session_id).first()
        if session is None:
            continue  # no selling merchant to give it to: it goes with its holder
        previous, key, seen = None, root, set()
        # A holder may have rotated its key (in the dashboard): the successors carry the purchase on.
        while key is not None and key.pk not in seen and key.pk not in converted:
            seen.add(key.pk)
            entitlement = EntitlementKey.objects.create(
                account_id=session.account_id, session_id=session.pk,
                customer_email=session.customer_email or holder_emails[key.account_id], mode=key.mode,
                status=key.status, key_hash=key.key_hash, prefix=key.prefix, last4=key.last4,
                created_at=key.created_at, expires_at=key.expires_at, revoked_at=key.revoked_at, replaces=previous,
            )
            if previous is not None:
                EntitlementKey.objects.filter(pk=previous.pk).update(superseded_by=entitlement,
                                                                     superseded_at=entitlement.created_at)
            converted[key.pk] = entitlement
            previous, key = entitlement, keys.get(key.replaced_by_id)
    for reveal in KeyReveal.objects.filter(api_key_id__in=list(converted)):
        reveal.entitlement_key = converted[reveal.api_key_id]
        reveal.save(update_fields=["entitlement_key"])


class Migration(migrations.Migration):

    dependencies = [
        ('invoices_app', '0002_key_reveal_entitlement_key'),
        ('keys_app', '0003_entitlement_keys'),
        ('sessions_app', '0004_leaner_session_indexes'),
    ]

    operations = [
        migrations.RunPython(holder_keys_to_entitlement_keys, migrations.RunPython.noop),
    ]
