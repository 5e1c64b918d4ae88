from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from keys_app.models import ApiKey


def _works(plaintext: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plaintext)
    return client.get("/account").status_code == 200


def _shown_key(response) -> str:
    html = response.content.decode()
    return html.split('data-testid="new-key"')[1].split(">", 1)[1].split("<", 1)[0]


@pytest.mark.parametrize("overlap,delta", [("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)),
                                           ("7d", timedelta(days=7))])
def test_rotating_shows_the_new_key_once_and_keeps_the_old_one_for_the_overlap(merchant_client, merchant,
                                                                                overlap, delta):
    old = merchant.api_key

    # when the merchant rotates with an overlap
    response = merchant_client.post(f"/admin/keys_app/apikey/{old.pk}/rotate/", {"overlap": overlap})

    # then the new key is on that page, works, and is not cached
    assert response.status_code == 200
    new_plain = _shown_key(response)
    assert new_plain.startswith("sk_test_")
    assert "no-store" in response["Cache-Control"]
    assert _works(new_plain) and _works(merchant.plaintext_key)
    old.refresh_from_db()
    assert old.expires_at == pytest.approx(timezone.now() + delta, abs=timedelta(seconds=30))
    assert AuditEvent.objects.filter(action="key.rotated", subject_id=str(old.pk), actor="admin:billing@acme.test").exists()

    # and no page shows the plain key again
    new_key = ApiKey.objects.get(replaced_by=None, account=merchant, status="active", expires_at=None)
    for url in (f"/admin/keys_app/apikey/{new_key.pk}/change/", "/admin/keys_app/apikey/"):
        assert new_plain not in merchant_client.get(url).content.decode()


def test_rotating_without_overlap_stops_the_old_key_at_once(merchant_client, merchant):
    response = merchant_client.post(f"/admin/keys_app/apikey/{merchant.api_key.pk}/rotate/", {"overlap": "0"})

    assert _works(_shown_key(response))
    assert not _works(merchant.plaintext_key)


def test_an_unknown_overlap_is_refused(merchant_client, merchant):
    response = merchant_client.post(f"/admin/keys_app/apikey/{merchant.api_key.pk}/rotate/", {"overlap": "99y"})

    assert response.status_code == 200
    assert 'data-testid="new-key"' not in response.content.decode()
    assert ApiKey.objects.filter(account=merchant).count() == 1


def test_a_merchant_revokes_its_key(merchant_client, merchant):
    response = merchant_client.post(f"/admin/keys_app/apikey/{merchant.api_key.pk}/revoke/")

    assert response.status_code == 302
    assert not _works(merchant.plaintext_key)
    assert AuditEvent.objects.filter(action="key.revoked", subject_id=str(merchant.api_key.pk)).exists()


def test_a_merchant_cannot_upgrade_its_own_key_to_live(merchant_client, merchant):
    page = merchant_client.get(f"/admin/keys_app/apikey/{merchant.api_key.pk}/change/").content.decode()
    response = merchant_client.post(f"/admin/keys_app/apikey/{merchant.api_key.pk}/upgrade/")

    assert 'data-testid="upgrade"' not in page
    assert response.status_code == 403
    assert not ApiKey.objects.filter(account=merchant, mode="live").exists()


def test_staff_issue_a_live_key_shown_once(staff_client, merchant):
    response = staff_client.post(f"/admin/keys_app/apikey/{merchant.api_key.pk}/upgrade/")

    plain = _shown_key(response)
    assert plain.startswith("sk_live_") and _works(plain)
    assert ApiKey.objects.get(account=merchant, mode="live").status == "active"
    assert AuditEvent.objects.filter(action="key.upgraded", account_id=merchant.pk, actor="admin:staff").exists()


def test_every_key_shows_when_it_was_last_used(merchant_client, merchant):
    assert _works(merchant.plaintext_key)

    html = merchant_client.get("/admin/keys_app/apikey/").content.decode()

    merchant.api_key.refresh_from_db()
    assert merchant.api_key.last_used_at is not None
    assert 'class="field-last_used_at">-<' not in html
    assert "field-last_used_at" in html
