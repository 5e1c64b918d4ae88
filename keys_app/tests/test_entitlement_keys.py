"""Entitlement keys: what a buyer pays for, verified by the merchant's own service, managed by the merchant."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from freezegun import freeze_time
from rest_framework.test import APIClient

from audit.models import AuditEvent
from keys_app import keygen
from keys_app.entitlements import entitlement_key_issue, entitlement_key_revoke, entitlement_keys_mark_refunded
from keys_app.models import EntitlementKey
from keys_app.services import key_issue

pytestmark = pytest.mark.django_db


def issue(account, *, email: str = "buyer@example.com", days: int | None = None, metadata: dict | None = None):
    return entitlement_key_issue(account=account, session_id=uuid.uuid4(), customer_email=email,
                                 expires_in_days=days, metadata=metadata or {"plan": "pro"}, actor="test")


def verify(client: APIClient, key) -> dict:
    response = client.post("/keys/verify", {"key": key}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def client_for(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plaintext)
    return client


# ---------------------------------------------------------------- format and storage


@pytest.mark.parametrize("mode", ["test", "live"])
def test_an_entitlement_key_has_its_own_prefix_and_a_checksum(mode):
    key = keygen.generate_key(mode, keygen.ENTITLEMENT)

    assert re.fullmatch(rf"ek_{mode}_[0-9A-Za-z]{{30}}", key)
    assert keygen.parse_entitlement_key(key) == mode
    assert keygen.parse_key(key) is None  # never a secret key
    assert keygen.parse_entitlement_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_only_a_hash_prefix_and_last_4_are_stored(merchant):
    issued = issue(merchant)

    row = EntitlementKey.objects.get(pk=issued.key.pk)
    assert row.key_hash == keygen.hash_key(issued.plaintext)
    assert (row.prefix, row.last4) == (issued.plaintext[:12], issued.plaintext[-4:])
    with connection.cursor() as cursor:
        for table in (EntitlementKey._meta.db_table, AuditEvent._meta.db_table):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - table names from the models
            assert issued.plaintext not in repr(cursor.fetchall())


def test_the_key_follows_the_merchant_s_issued_key_mode(merchant, api):
    # given a merchant that switched issuing to live over the API
    response = api.patch("/account", {"issued_key_mode": "live"}, format="json")
    assert response.status_code == 200 and response.json()["issued_key_mode"] == "live"
    merchant.refresh_from_db()

    # then the next key is a live one
    issued = issue(merchant)
    assert issued.plaintext.startswith("ek_live_") and issued.key.mode == "live"


def test_issued_key_mode_defaults_to_test_and_rejects_other_values(merchant, api):
    assert api.get("/account").json()["issued_key_mode"] == "test"
    response = api.patch("/account", {"issued_key_mode": "prod"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "issued_key_mode_invalid_choice"


# ---------------------------------------------------------------- never a key to our API


def test_an_entitlement_key_is_refused_by_the_merchant_api_with_its_own_code(merchant):
    issued = issue(merchant)

    response = client_for(issued.plaintext).get("/account")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "key_not_merchant"


def test_a_buyer_key_from_before_the_ek_prefix_is_refused_as_not_a_merchant_key_and_still_verifies(merchant, api):
    # given a buyer's key in the old sk_ format, converted to an entitlement key of the merchant
    legacy = keygen.generate_key("test")
    EntitlementKey.objects.create(account=merchant, session_id=uuid.uuid4(), customer_email="old@example.com",
                                  key_hash=keygen.hash_key(legacy), prefix=legacy[:12], last4=legacy[-4:])

    # then it opens nothing of our API, and the merchant's service still verifies it
    response = client_for(legacy).get("/account")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "key_not_merchant")
    assert verify(api, legacy)["code"] == "valid"


# ---------------------------------------------------------------- verify: every code


def test_a_valid_key_verifies_with_what_it_bought(merchant, api):
    issued = issue(merchant, days=30, metadata={"plan": "pro", "seats": 5})

    body = verify(api, issued.plaintext)

    assert body["valid"] is True and body["code"] == "valid"
    key = issued.key
    assert body["key"] == {
        "id": str(key.pk), "mode": "test", "session_id": str(key.session_id), "customer_email": "buyer@example.com",
        "created_at": key.created_at.isoformat().replace("+00:00", "Z"),
        "expires_at": key.expires_at.isoformat().replace("+00:00", "Z"), "metadata": {"plan": "pro", "seats": 5},
    }


def test_a_revoked_key_verifies_as_revoked(merchant, api):
    issued = issue(merchant)
    assert verify(api, issued.plaintext)["code"] == "valid"  # cached now

    entitlement_key_revoke(key=issued.key, actor="test")

    body = verify(api, issued.plaintext)
    assert (body["valid"], body["code"]) == (False, "revoked")
    assert body["key"]["id"] == str(issued.key.pk)


def test_an_expired_key_verifies_as_expired(merchant, api):
    issued = issue(merchant, days=1)
    assert verify(api, issued.plaintext)["code"] == "valid"

    with freeze_time(timezone.now() + timedelta(days=1, seconds=1)):
        body = verify(api, issued.plaintext)

    assert (body["valid"], body["code"]) == (False, "expired")


def test_a_key_whose_purchase_was_refunded_verifies_as_refunded(merchant, api):
    issued = issue(merchant)
    assert verify(api, issued.plaintext)["code"] == "valid"

    entitlement_keys_mark_refunded(session_id=issued.key.session_id, actor="test")

    assert verify(api, issued.plaintext)["code"] == "refunded"


@pytest.mark.parametrize(("key_mode", "merchant_key_mode"), [("live", "test"), ("test", "live")])
def test_a_key_checked_with_a_secret_key_of_the_other_mode_is_wrong_mode(merchant, key_mode, merchant_key_mode):
    merchant.issued_key_mode = key_mode
    merchant.save()
    issued = issue(merchant)
    checker = client_for(key_issue(account=merchant, mode=merchant_key_mode, actor="test").plaintext)

    body = verify(checker, issued.plaintext)

    assert (body["valid"], body["code"], body["key"]["mode"]) == (False, "wrong_mode", key_mode)


def test_another_merchant_s_key_is_unknown_exactly_like_a_key_that_does_not_exist(merchant, other_merchant, api):
    theirs = issue(other_merchant)
    nonexistent = keygen.generate_key("test", keygen.ENTITLEMENT)

    assert verify(api, theirs.plaintext) == verify(api, nonexistent) == {"valid": False, "code": "unknown",
                                                                          "key": None}
    # and the owner's own service sees it as valid
    assert verify(client_for(other_merchant.plaintext_key), theirs.plaintext)["code"] == "valid"


@pytest.mark.parametrize("malformed", ["", "ek_test_short", "ek_test_" + "A" * 30, "not a key at all", "ek_" + "x" * 500,
                                       " ", "sk_test_" + "A" * 30])
def test_a_malformed_key_is_unknown_without_touching_the_database(api, malformed, django_assert_num_queries):
    verify(api, keygen.generate_key("test", keygen.ENTITLEMENT))  # the merchant's own key is cached and touched

    with django_assert_num_queries(0):
        body = verify(api, malformed)

    assert body == {"valid": False, "code": "unknown", "key": None}


def test_verify_needs_the_key_as_a_string(api):
    for body in ({}, {"key": 5}, {"key": None}, ["ek_test_x"]):
        response = api.post("/keys/verify", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] in ("key_required", "body_invalid")


def test_a_second_verification_of_a_key_is_served_from_the_cache(merchant, api):
    issued = issue(merchant)
    verify(api, issued.plaintext)

    with CaptureQueriesContext(connection) as queries:
        assert verify(api, issued.plaintext)["code"] == "valid"

    assert [q["sql"] for q in queries.captured_queries] == []


def test_verify_needs_a_merchant_key(merchant):
    issued = issue(merchant)
    assert APIClient().post("/keys/verify", {"key": issued.plaintext}, format="json").status_code == 401
    response = client_for(issued.plaintext).post("/keys/verify", {"key": issued.plaintext}, format="json")
    assert response.json()["error"]["code"] == "key_not_merchant"


# ---------------------------------------------------------------- lifecycle over the API


def test_rotation_returns_a_new_key_once_and_the_old_one_verifies_until_the_overlap_ends(merchant, api):
    issued = issue(merchant, days=365)
    start = timezone.now()

    with freeze_time(start) as clock:
        # when the merchant rotates the key with the default overlap
        response = api.post(f"/keys/{issued.key.pk}/rotate", format="json")
        assert response.status_code == 201, response.content
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        new_plaintext = body["plaintext"]
        assert new_plaintext.startswith("ek_test_") and new_plaintext != issued.plaintext
        assert body["previous"]["superseded_by"] == body["key"]["id"]
        assert body["key"]["replaces"] == str(issued.key.pk)
        # the new key carries the purchase on: same session, buyer, metadata and end of entitlement
        new = verify(api, new_plaintext)["key"]
        assert (new["session_id"], new["customer_email"], new["metadata"]) == (
            str(issued.key.session_id), "buyer@example.com", {"plan": "pro"})
        assert new["expires_at"] == issued.key.expires_at.isoformat().replace("+00:00", "Z")

        # then the old key keeps verifying for 24 h
        clock.tick(timedelta(hours=23, minutes=59))
        assert verify(api, issued.plaintext)["code"] == "valid"
        # and then verifies as expired, while the new one is valid
        clock.tick(timedelta(minutes=2))
        assert verify(api, issued.plaintext)["code"] == "expired"
        assert verify(api, new_plaintext)["code"] == "valid"

    # and a replaced key cannot be rotated again
    again = api.post(f"/keys/{issued.key.pk}/rotate", format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "key_superseded")
    assert AuditEvent.objects.filter(action="entitlement_key.rotated", subject_id=str(issued.key.pk)).count() == 1


def test_rotation_with_no_overlap_stops_the_old_key_at_once(merchant, api):
    issued = issue(merchant)

    response = api.post(f"/keys/{issued.key.pk}/rotate", {"overlap_hours": 0}, format="json")

    assert response.status_code == 201
    assert verify(api, issued.plaintext)["code"] == "expired"
    assert verify(api, response.json()["plaintext"])["code"] == "valid"


def test_rotation_refuses_a_bad_overlap(merchant, api):
    issued = issue(merchant)
    for body in ({"overlap_hours": -1}, {"overlap_hours": 1000}, {"overlap_hours": "soon"}):
        response = api.post(f"/keys/{issued.key.pk}/rotate", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"].startswith("overlap_hours_")


def test_upgrade_turns_a_test_key_into_a_live_one(merchant, api):
    issued = issue(merchant)
    live_checker = client_for(key_issue(account=merchant, mode="live", actor="test").plaintext)

    response = api.post(f"/keys/{issued.key.pk}/upgrade", {"overlap_hours": 0}, format="json")

    assert response.status_code == 201, response.content
    live_plaintext = response.json()["plaintext"]
    assert live_plaintext.startswith("ek_live_") and response.json()["key"]["mode"] == "live"
    # the live key verifies for the merchant's live service, and is the wrong mode for its test service
    assert verify(live_checker, live_plaintext)["code"] == "valid"
    assert verify(api, live_plaintext)["code"] == "wrong_mode"
    # the test key stopped, as asked
    assert verify(api, issued.plaintext)["code"] == "expired"
    # a live key is not upgraded again
    again = api.post(f"/keys/{response.json()['key']['id']}/upgrade", format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "key_already_live")
    assert AuditEvent.objects.filter(action="entitlement_key.upgraded").count() == 1


def test_revoke_over_the_api_is_audited_and_idempotent(merchant, api):
    issued = issue(merchant)

    first = api.post(f"/keys/{issued.key.pk}/revoke")
    second = api.post(f"/keys/{issued.key.pk}/revoke")

    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "revoked" and first.json()["revoked_at"]
    assert verify(api, issued.plaintext)["code"] == "revoked"
    assert AuditEvent.objects.filter(action="entitlement_key.revoked").count() == 1
    rotate = api.post(f"/keys/{issued.key.pk}/rotate", format="json")
    assert (rotate.status_code, rotate.json()["error"]["code"]) == (409, "key_revoked")


def test_keys_are_listed_filtered_and_paginated_like_sessions(merchant, other_merchant, api):
    session_id = uuid.uuid4()
    first = entitlement_key_issue(account=merchant, session_id=session_id, customer_email="Ann@Example.com",
                                  actor="test")
    others = [issue(merchant, email=f"b{i}@example.com") for i in range(3)]
    issue(other_merchant, email="ann@example.com")

    everything = api.get("/keys?limit=2").json()
    assert len(everything["results"]) == 2 and everything["next"]
    rest = api.get(everything["next"]).json()
    listed = [k["id"] for k in everything["results"] + rest["results"]]
    assert sorted(listed) == sorted(str(k.key.pk) for k in [first, *others])
    assert [k["id"] for k in api.get(f"/keys?session_id={session_id}").json()["results"]] == [str(first.key.pk)]
    assert [k["id"] for k in api.get("/keys?customer_email=ann@example.com").json()["results"]] == [
        str(first.key.pk)]
    assert api.get("/keys?session_id=nope").json()["error"]["code"] == "session_id_invalid"
    assert api.get("/keys?cursor=bogus").json()["error"]["code"] == "cursor_invalid"


def test_one_key_is_read_and_another_merchant_s_is_not_found(merchant, other_merchant, api):
    mine, theirs = issue(merchant), issue(other_merchant)

    body = api.get(f"/keys/{mine.key.pk}").json()
    assert (body["id"], body["display"], body["status"]) == (str(mine.key.pk), mine.key.display, "active")
    assert mine.plaintext not in str(body)
    for key_id in (theirs.key.pk, uuid.uuid4(), "not-a-uuid"):
        for response in (api.get(f"/keys/{key_id}"), api.post(f"/keys/{key_id}/revoke"),
                         api.post(f"/keys/{key_id}/rotate", format="json"),
                         api.post(f"/keys/{key_id}/upgrade", format="json")):
            assert (response.status_code, response.json()["error"]["code"]) == (404, "key_not_found")
    assert EntitlementKey.objects.get(pk=theirs.key.pk).status == "active"

