"""API keys: their format, hash-only storage, X-API-Key authentication, use tracking, rotation and revocation."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from freezegun import freeze_time
from rest_framework.test import APIClient

from audit.models import AuditEvent
from core import errors
from keys_app import keygen
from keys_app.models import ApiKey
from keys_app.services import key_issue, key_revoke, key_rotate, key_upgrade_live


def _client(key: str | None) -> APIClient:
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_X_API_KEY=key)
    return client


def _error_code(response) -> str:
    return response.json()["error"]["code"]


# ---------------------------------------------------------------- format


@pytest.mark.parametrize("mode", ["test", "live"])
def test_a_key_has_its_mode_prefix_a_random_body_and_a_checksum(mode):
    key = keygen.generate_key(mode)

    assert re.fullmatch(rf"sk_{mode}_[0-9A-Za-z]{{30}}", key)
    assert keygen.parse_key(key) == mode


def test_a_key_carries_at_least_128_bits_of_randomness():
    assert keygen.BODY_LEN * math.log2(len(keygen.ALPHABET)) >= 128
    keys = {keygen.generate_key("test") for _ in range(2000)}
    assert len(keys) == 2000


def test_the_checksum_catches_a_mistyped_character():
    key = keygen.generate_key("test")
    position = 10
    typo = key[:position] + ("A" if key[position] != "A" else "B") + key[position + 1:]

    assert keygen.parse_key(typo) is None
    assert keygen.parse_key(key[:-1]) is None
    assert keygen.parse_key(key.replace("sk_test_", "sk_live_")) is None


@pytest.mark.django_db
def test_only_a_hash_of_the_key_is_stored(merchant):
    # given a freshly issued key
    plaintext = merchant.plaintext_key

    # then its row keeps a SHA-256, the prefix and the last four characters, and nowhere the key itself
    row = ApiKey.objects.get(pk=merchant.api_key.pk)
    assert row.key_hash == keygen.hash_key(plaintext) != plaintext
    assert (row.prefix, row.last4) == (plaintext[:12], plaintext[-4:])
    assert row.display == f"{plaintext[:12]}…{plaintext[-4:]}"
    with connection.cursor() as cursor:
        for table in (ApiKey._meta.db_table, AuditEvent._meta.db_table):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names from the models
            assert plaintext not in repr(cursor.fetchall())


# ---------------------------------------------------------------- authentication


@pytest.mark.django_db
def test_a_valid_key_authenticates_as_its_merchant(merchant):
    response = _client(merchant.plaintext_key).get("/account")

    assert response.status_code == 200
    assert response.json()["id"] == merchant.pk


@pytest.mark.django_db
def test_surrounding_whitespace_around_the_key_is_tolerated(merchant):
    assert _client(f"  {merchant.plaintext_key} ").get("/account").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "code"), [
    (None, "api_key_missing"),
    ("", "api_key_malformed"),
    ("sk_test_local_automation", "api_key_malformed"),
    ("Bearer sk_test_abc", "api_key_malformed"),
    ("pk_test_" + "a" * 30, "api_key_malformed"),
    ("__checksum__", "api_key_malformed"),
    ("__unknown__", "api_key_invalid"),
])
def test_a_bad_key_is_a_401_with_its_own_code(merchant, key, code):
    if key == "__checksum__":
        key = merchant.plaintext_key[:-1] + ("0" if merchant.plaintext_key[-1] != "0" else "1")
    elif key == "__unknown__":
        key = keygen.generate_key("test")

    response = _client(key).get("/sessions")

    assert response.status_code == 401
    assert _error_code(response) == code
    assert response["WWW-Authenticate"] == "X-API-Key"


@pytest.mark.django_db
def test_a_revoked_key_is_a_401_api_key_revoked(merchant):
    key_revoke(key=merchant.api_key, actor="test")

    response = _client(merchant.plaintext_key).get("/sessions")

    assert response.status_code == 401
    assert _error_code(response) == "api_key_revoked"
    assert AuditEvent.objects.filter(action="key.revoked", subject_id=str(merchant.api_key.pk)).count() == 1


@pytest.mark.django_db
def test_an_expired_key_is_a_401_api_key_expired(merchant):
    ApiKey.objects.filter(pk=merchant.api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = _client(merchant.plaintext_key).get("/sessions")

    assert response.status_code == 401
    assert _error_code(response) == "api_key_expired"


# ---------------------------------------------------------------- last_used_at


def _updates(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]


@pytest.mark.django_db
def test_last_used_at_is_recorded_but_not_written_on_every_request(merchant):
    client = _client(merchant.plaintext_key)
    start = timezone.now()

    # when the key is first used, one UPDATE records it
    with freeze_time(start), CaptureQueriesContext(connection) as first:
        assert client.get("/sessions").status_code == 200
    assert len(_updates(first.captured_queries)) == 1
    assert ApiKey.objects.get(pk=merchant.api_key.pk).last_used_at == start

    # when it is used again within the interval, nothing is written
    with freeze_time(start + timedelta(seconds=30)), CaptureQueriesContext(connection) as again:
        for _ in range(5):
            assert client.get("/sessions").status_code == 200
    assert _updates(again.captured_queries) == []
    assert ApiKey.objects.get(pk=merchant.api_key.pk).last_used_at == start

    # when the interval has passed, one UPDATE moves it forward
    later = start + timedelta(seconds=61)
    with freeze_time(later), CaptureQueriesContext(connection) as after:
        assert client.get("/sessions").status_code == 200
    assert len(_updates(after.captured_queries)) == 1
    assert ApiKey.objects.get(pk=merchant.api_key.pk).last_used_at == later


@pytest.mark.django_db
def test_authentication_costs_at_most_one_read_when_the_key_was_used_recently(merchant,
                                                                            django_assert_max_num_queries):
    client = _client(merchant.plaintext_key)
    client.get("/account")

    # the key lookup (with its account) is the only query, and none when the key is cached
    with django_assert_max_num_queries(1):
        assert client.get("/account").status_code == 200


# ---------------------------------------------------------------- rotation, revocation, upgrade


@pytest.mark.django_db
def test_a_rotation_with_overlap_keeps_the_old_key_working_until_it_expires(merchant):
    # given a key rotated with a one-hour overlap
    start = timezone.now()
    with freeze_time(start):
        new = key_rotate(key=merchant.api_key, overlap=timedelta(hours=1), actor="test")
    assert new.plaintext != merchant.plaintext_key
    assert new.api_key.mode == merchant.api_key.mode

    # then during the overlap both keys work
    with freeze_time(start + timedelta(minutes=59)):
        assert _client(merchant.plaintext_key).get("/account").status_code == 200
        assert _client(new.plaintext).get("/account").status_code == 200

    # and after it only the new one does
    with freeze_time(start + timedelta(hours=1, seconds=1)):
        old = _client(merchant.plaintext_key).get("/account")
        assert (old.status_code, _error_code(old)) == (401, "api_key_expired")
        assert _client(new.plaintext).get("/account").status_code == 200

    old_row = ApiKey.objects.get(pk=merchant.api_key.pk)
    assert old_row.replaced_by_id == new.api_key.pk
    assert AuditEvent.objects.filter(action="key.rotated", subject_id=str(old_row.pk)).count() == 1


@pytest.mark.django_db
def test_a_rotation_without_overlap_revokes_the_old_key_at_once(merchant):
    new = key_rotate(key=merchant.api_key, overlap=timedelta(0), actor="test")

    old = _client(merchant.plaintext_key).get("/account")
    assert (old.status_code, _error_code(old)) == (401, "api_key_revoked")
    assert _client(new.plaintext).get("/account").status_code == 200


@pytest.mark.django_db
def test_a_rotation_never_extends_an_earlier_expiry(merchant):
    soon = timezone.now() + timedelta(minutes=10)
    ApiKey.objects.filter(pk=merchant.api_key.pk).update(expires_at=soon)
    merchant.api_key.refresh_from_db()

    key_rotate(key=merchant.api_key, overlap=timedelta(days=7), actor="test")

    assert ApiKey.objects.get(pk=merchant.api_key.pk).expires_at == soon


@pytest.mark.django_db
def test_a_revoked_key_cannot_be_rotated(merchant):
    key_revoke(key=merchant.api_key, actor="test")

    with pytest.raises(errors.Conflict, match="active"):
        key_rotate(key=merchant.api_key, overlap=timedelta(hours=1), actor="test")


@pytest.mark.django_db
def test_revoking_twice_is_harmless(merchant):
    key_revoke(key=merchant.api_key, actor="test")
    key_revoke(key=merchant.api_key, actor="test")

    assert AuditEvent.objects.filter(action="key.revoked").count() == 1


@pytest.mark.django_db
def test_an_upgraded_account_gets_a_live_key_that_creates_live_sessions(merchant):
    issued = key_upgrade_live(account=merchant, actor="staff:1")

    response = _client(issued.plaintext).post("/create_session", {"amount": "5"}, format="json")

    assert issued.plaintext.startswith("sk_live_")
    assert response.status_code == 201
    assert response.json()["mode"] == "live"
    # the test key still creates test sessions
    assert _client(merchant.plaintext_key).post("/create_session", {"amount": "5"}, format="json").json()["mode"] == "test"


@pytest.mark.django_db
def test_issuing_a_key_is_audited_without_the_key(merchant):
    issued = key_issue(account=merchant, mode="test", label="ci", actor="test")

    row = AuditEvent.objects.get(action="key.issued", subject_id=str(issued.api_key.pk))
    assert row.after["display"] == issued.api_key.display
    assert issued.plaintext not in repr(row.after)
