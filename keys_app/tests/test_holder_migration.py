"""The data migration that ends holder accounts, run on a database that has them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from keys_app import keygen

BEFORE = [("keys_app", "0003_entitlement_keys"), ("invoices_app", "0002_key_reveal_entitlement_key"),
          ("sessions_app", "0005_session_entitlement")]
AFTER = [("keys_app", "0005_no_holder_accounts"), ("invoices_app", "0004_key_reveal_drop_api_key")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _key(ApiKey, account, *, session_id=None, **extra):
    plaintext = keygen.generate_key(extra.pop("mode", "test"))
    key = ApiKey.objects.create(account=account, key_hash=keygen.hash_key(plaintext), prefix=plaintext[:12],
                                last4=plaintext[-4:], source_session_id=session_id, **extra)
    return key, plaintext


@pytest.fixture
def back_to_the_latest_schema():
    # Other tests on this database need every migration applied again afterwards.
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_schema")
def test_holder_keys_become_entitlement_keys_of_the_selling_merchant_and_holders_go():
    old = migrate(BEFORE)
    Account, ApiKey = old.get_model("keys_app", "Account"), old.get_model("keys_app", "ApiKey")
    PaymentSession, KeyReveal = old.get_model("sessions_app", "PaymentSession"), old.get_model("invoices_app",
                                                                                               "KeyReveal")
    now = timezone.now()

    def session(account, email):
        return PaymentSession.objects.create(account=account, amount=Decimal("10.00"), currency="EUR",
                                             customer_email=email, status="paid", paid_at=now,
                                             expires_at=now + timedelta(hours=1))

    # given a merchant, a key of its own, and two buyers' holder accounts
    merchant = Account.objects.create(kind="merchant", name="Acme", email="billing@acme.test")
    merchant_key, _ = _key(ApiKey, merchant)
    ann = Account.objects.create(kind="holder", name="Ann", email="ann@example.com")
    bob = Account.objects.create(kind="holder", name="Bob", email="bob@example.com")
    # Ann bought once and rotated her key in the dashboard (the old one in its overlap)
    ann_session = session(merchant, "ann@example.com")
    ann_first, _ = _key(ApiKey, ann, session_id=ann_session.pk, created_at=now - timedelta(days=2),
                                      expires_at=now + timedelta(hours=3))
    ann_second, _ = _key(ApiKey, ann, created_at=now - timedelta(days=1))
    ApiKey.objects.filter(pk=ann_first.pk).update(replaced_by=ann_second)
    reveal = KeyReveal.objects.create(api_key=ann_first, session=ann_session, ciphertext="sealed")
    # Bob's key was revoked; and Bob used his key to create a session of his own (acting as a merchant)
    bob_session = session(merchant, "bob@example.com")
    bob_key, _ = _key(ApiKey, bob, session_id=bob_session.pk, status="revoked", revoked_at=now)
    bob_other, _ = _key(ApiKey, bob)
    session(bob, "victim@example.com")

    # when the migrations run
    new = migrate(AFTER)
    Account, ApiKey = new.get_model("keys_app", "Account"), new.get_model("keys_app", "ApiKey")
    EntitlementKey, KeyReveal = new.get_model("keys_app", "EntitlementKey"), new.get_model("invoices_app",
                                                                                          "KeyReveal")

    # then Ann's keys are entitlement keys of the merchant, the rotation chain kept, the same hashes
    first = EntitlementKey.objects.get(key_hash=ann_first.key_hash)
    second = EntitlementKey.objects.get(key_hash=ann_second.key_hash)
    assert (first.account_id, first.session_id, first.customer_email) == (merchant.pk, ann_session.pk,
                                                                          "ann@example.com")
    assert (second.account_id, second.session_id, second.replaces_id) == (merchant.pk, ann_session.pk, first.pk)
    assert first.superseded_by_id == second.pk and first.expires_at == ann_first.expires_at
    assert first.prefix == ann_first.prefix and first.last4 == ann_first.last4
    # and the pending reveal now reveals the entitlement key
    assert KeyReveal.objects.get(pk=reveal.pk).entitlement_key_id == first.pk
    # Bob's revoked key stays revoked
    assert EntitlementKey.objects.get(key_hash=bob_key.key_hash).status == "revoked"
    # no holder key is left as a key to the API; Ann's account is gone
    assert not ApiKey.objects.filter(key_hash__in=[ann_first.key_hash, ann_second.key_hash, bob_key.key_hash])
    assert not Account.objects.filter(pk=ann.pk).exists()
    # Bob's account owns a session, so it stays, but its remaining key no longer works
    assert ApiKey.objects.get(pk=bob_other.pk).status == "revoked"
    # the merchant and its own key are untouched
    assert ApiKey.objects.get(pk=merchant_key.pk).status == "active"
    assert EntitlementKey.objects.count() == 3
