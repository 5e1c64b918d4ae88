import re
import uuid
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from audit.models import AuditEvent
from invoices_app import tokens
from invoices_app.models import AccessLink, AccessLinkUse, Invoice
from invoices_app.services.access import access_link_revoke, access_token
from invoices_app.services.fulfilment import fulfilment_run
from keys_app.models import EntitlementKey

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def fulfilled(paid_session):
    session = paid_session()
    fulfilment_run(session_id=session.pk)
    link = AccessLink.objects.get(session=session)
    return session, link, access_token(link)


def test_a_valid_link_shows_the_invoice_its_status_and_the_pdf(fulfilled, client):
    session, link, token = fulfilled
    invoice = Invoice.objects.get(session=session)

    page = client.get(f"/access/{token}")
    assert page.status_code == 200
    body = page.content.decode()
    assert invoice.number in body and "99.99 EUR" in body and "Paid" in body and "Reveal my key" in body
    assert page["Cache-Control"].startswith("max-age=0") or "no-store" in page["Cache-Control"]

    pdf = client.get(f"/access/{token}/invoice.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert list(AccessLinkUse.objects.filter(link=link).values_list("action", flat=True).order_by("at")) == [
        "view", "pdf"]


def test_an_expired_link_gets_410(fulfilled, client):
    _, link, token = fulfilled
    with freeze_time(link.expires_at + timedelta(seconds=1)):
        response = client.get(f"/access/{token}")
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_the_link_still_works_just_before_it_expires(fulfilled, client):
    _, link, token = fulfilled
    with freeze_time(link.expires_at - timedelta(seconds=5)):
        assert client.get(f"/access/{token}").status_code == 200


def test_a_link_lasts_seven_days(fulfilled):
    _, link, _ = fulfilled
    assert link.expires_at - link.created_at == timedelta(days=7)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # signature altered
    lambda t: t.split(".")[0] + "." + t.split(".")[1][::-1] + "." + t.split(".")[2],  # claims altered
    lambda t: "not-a-token",
    lambda t: t + "." + t,
])
def test_a_tampered_or_malformed_token_gets_401(fulfilled, client, mangle):
    _, _, token = fulfilled
    response = client.get(f"/access/{mangle(token)}")
    assert response.status_code == 401
    assert "not valid" in response.content.decode()
    assert client.get(f"/access/{mangle(token)}/invoice.pdf").status_code == 401


def test_a_token_for_another_audience_gets_401(fulfilled, client):
    session, link, _ = fulfilled
    other = tokens.token_encode(jti=link.jti, session_id=session.pk, issued_at=int(link.created_at.timestamp()),
                                expires_at=int(link.expires_at.timestamp()), audience="api")
    assert client.get(f"/access/{other}").status_code == 401


def test_a_token_signed_with_another_secret_gets_401(fulfilled, client):
    session, link, _ = fulfilled
    forged = jwt.encode({"iss": "payments", "aud": "access", "sub": str(session.pk), "jti": str(link.jti),
                         "exp": int(link.expires_at.timestamp())}, "x" * 40, algorithm="HS256")
    assert client.get(f"/access/{forged}").status_code == 401


def test_a_well_signed_token_for_an_unknown_link_gets_401(fulfilled, client):
    session, link, _ = fulfilled
    stray = tokens.token_encode(jti=uuid.uuid4(), session_id=session.pk, issued_at=int(link.created_at.timestamp()),
                                expires_at=int(link.expires_at.timestamp()))
    assert client.get(f"/access/{stray}").status_code == 401


def test_a_token_with_alg_none_gets_401(fulfilled, client):
    session, link, _ = fulfilled
    unsigned = jwt.encode({"iss": "payments", "aud": "access", "sub": str(session.pk), "jti": str(link.jti),
                           "exp": int(link.expires_at.timestamp())}, None, algorithm="none")
    assert client.get(f"/access/{unsigned}").status_code == 401


def test_a_revoked_link_gets_410_and_revoking_is_audited(fulfilled, client):
    _, link, token = fulfilled
    access_link_revoke(link=link, actor="staff:alice", reason="customer asked")
    access_link_revoke(link=link, actor="staff:alice")  # twice changes nothing

    response = client.get(f"/access/{token}")
    assert response.status_code == 410 and "revoked" in response.content.decode()
    assert client.get(f"/access/{token}/invoice.pdf").status_code == 410
    assert AuditEvent.objects.filter(action="access_link.revoked").count() == 1


def test_the_key_is_revealed_once_verifies_for_the_merchant_and_is_no_key_to_our_api(fulfilled, api):
    session, link, token = fulfilled
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(f"/access/{token}")
    csrf = page.cookies["csrftoken"].value

    # when the buyer reveals the key
    revealed = browser.post(f"/access/{token}/reveal-key", {"csrfmiddlewaretoken": csrf})

    # then the page shows it once; the merchant's service can verify it, and our API refuses it
    assert revealed.status_code == 200
    plaintext = revealed.context["revealed_key"]
    assert plaintext.startswith("ek_test_") and plaintext in revealed.content.decode()
    verified = api.post("/keys/verify", {"key": plaintext}, format="json").json()
    assert (verified["valid"], verified["key"]["customer_email"]) == (True, "buyer@example.com")
    me = Client().get("/account", HTTP_X_API_KEY=plaintext)
    assert (me.status_code, me.json()["error"]["code"]) == (401, "key_not_merchant")

    # and a second reveal shows only the prefix and last 4
    again = browser.post(f"/access/{token}/reveal-key", {"csrfmiddlewaretoken": csrf})
    assert again.status_code == 200 and again.context["revealed_key"] is None
    assert plaintext not in again.content.decode()
    key = EntitlementKey.objects.get(session_id=session.pk)
    assert key.display in again.content.decode() and "already revealed" in again.content.decode()
    assert "Reveal my key" not in browser.get(f"/access/{token}").content.decode()
    assert AuditEvent.objects.filter(action="key.revealed").count() == 1


def test_the_reveal_needs_the_csrf_token(fulfilled):
    _, _, token = fulfilled
    response = Client(enforce_csrf_checks=True).post(f"/access/{token}/reveal-key")
    assert response.status_code == 403


def test_the_database_never_holds_the_key_in_clear(fulfilled, client):
    session, link, token = fulfilled
    reveal = link.session.key_reveal
    revealed = client.post(f"/access/{token}/reveal-key").context["revealed_key"]
    assert revealed not in reveal.ciphertext
    reveal.refresh_from_db()
    assert reveal.ciphertext == "" and reveal.revealed_at is not None


def test_an_access_token_is_signed_hs256_with_the_jwt_secret(fulfilled):
    _, link, token = fulfilled
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, settings.JWT_SECRET_KEY, algorithms=["HS256"], audience="access")
    assert header["alg"] == "HS256"
    assert claims["jti"] == str(link.jti) and claims["exp"] == int(link.expires_at.timestamp())
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600
    assert timezone.now().timestamp() < claims["exp"]


# ---------------------------------------------------------------- the buyer replaces their key


def test_the_buyer_replaces_their_key_the_new_one_is_shown_once_and_the_old_one_stops_at_once(fulfilled, api):
    session, link, token = fulfilled
    browser = Client(enforce_csrf_checks=True)
    csrf = browser.get(f"/access/{token}").cookies["csrftoken"].value
    old = browser.post(f"/access/{token}/reveal-key", {"csrfmiddlewaretoken": csrf}).context["revealed_key"]
    assert api.post("/keys/verify", {"key": old}, format="json").json()["code"] == "valid"

    # when the buyer replaces the key from the access page
    replaced = browser.post(f"/access/{token}/rotate-key", {"csrfmiddlewaretoken": csrf})

    # then the page shows a new key, once, and says the old one stopped
    assert replaced.status_code == 200 and "no-store" in replaced["Cache-Control"]
    new = replaced.context["revealed_key"]
    assert new.startswith("ek_test_") and new != old and new in replaced.content.decode()
    assert "old one has stopped working" in replaced.content.decode()
    assert new not in browser.get(f"/access/{token}").content.decode()
    assert browser.post(f"/access/{token}/reveal-key", {"csrfmiddlewaretoken": csrf}).context["revealed_key"] is None
    # and the merchant's service sees the old key expired at once, the new one valid, for the same purchase
    assert api.post("/keys/verify", {"key": old}, format="json").json()["code"] == "expired"
    verified = api.post("/keys/verify", {"key": new}, format="json").json()
    assert (verified["code"], verified["key"]["session_id"]) == ("valid", str(session.pk))
    assert AccessLinkUse.objects.filter(link=link, action="rotate").count() == 1
    assert AuditEvent.objects.filter(action="entitlement_key.rotated", actor=f"access_link:{link.jti}").exists()


def test_replacing_the_key_needs_the_csrf_token(fulfilled):
    _, _, token = fulfilled
    assert Client(enforce_csrf_checks=True).post(f"/access/{token}/rotate-key").status_code == 403


def test_a_key_the_merchant_revoked_cannot_be_replaced_by_the_buyer(fulfilled, client):
    from keys_app.entitlements import entitlement_key_revoke

    session, _, token = fulfilled
    entitlement_key_revoke(key=EntitlementKey.objects.get(session_id=session.pk), actor="test")

    page = client.get(f"/access/{token}").content.decode()
    assert "has revoked this key" in page and "Replace my key" not in page
    refused = client.post(f"/access/{token}/rotate-key")
    assert refused.status_code == 200 and refused.context.get("revealed_key") is None
    assert "revoked" in refused.context["rotate_error"]
    assert EntitlementKey.objects.filter(session_id=session.pk).count() == 1


# ---------------------------------------------------------------- "email me my access links"


def test_email_me_my_links_answers_the_same_for_known_and_unknown_addresses(fulfilled, client, mailoutbox):
    session, link, _ = fulfilled
    mailoutbox.clear()
    assert "Email me my access links" in client.get("/access").content.decode()

    known = client.post("/access", {"email": "buyer@example.com"})
    unknown = client.post("/access", {"email": "nobody@example.com"})

    # the two answers are the same, status and words
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    # and only the address that bought gets mail: a fresh link to its purchase
    assert [m.to for m in mailoutbox] == [["buyer@example.com"]]
    fresh = re.search(r"/access/(\S+)", mailoutbox[0].body).group(1)
    assert client.get(f"/access/{fresh}").status_code == 200
    assert session.invoice.number in mailoutbox[0].body


def test_email_me_my_links_renews_an_expired_link_but_never_a_revoked_one(paid_session, client, mailoutbox):
    expired, revoked = paid_session(email="ann@example.com"), paid_session(email="ann@example.com")
    for session in (expired, revoked):
        fulfilment_run(session_id=session.pk)
    later = timezone.now() + timedelta(days=8)
    access_link_revoke(link=AccessLink.objects.get(session=revoked), actor="staff")
    mailoutbox.clear()

    with freeze_time(later):
        client.post("/access", {"email": "ANN@example.com"})
        [message] = mailoutbox
        tokens_sent = re.findall(r"/access/(\S+)", message.body)
        assert len(tokens_sent) == 1
        assert client.get(f"/access/{tokens_sent[0]}").status_code == 200
    assert AccessLink.objects.get(session=expired).expires_at > later


def test_email_me_my_links_is_rate_limited_per_address_and_per_ip(fulfilled, client, rates, mailoutbox):
    rates(access_links_address="2/hour", access_links_ip="3/hour")

    answers = [client.post("/access", {"email": "buyer@example.com"}).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    other = client.post("/access", {"email": "someone@example.com"}, REMOTE_ADDR="127.0.0.1")
    assert other.status_code == 429  # the IP's third request this hour
    fresh_ip = client.post("/access", {"email": "third@example.com"}, REMOTE_ADDR="127.0.0.9")
    assert fresh_ip.status_code == 200
    assert len([m for m in mailoutbox if m.subject == "Your access links"]) == 2


def test_email_me_my_links_wants_an_email_address(client, db):
    response = client.post("/access", {"email": "not-an-address"})
    assert response.status_code == 400 and "valid email" in response.content.decode()


def test_after_the_merchant_replaced_the_key_the_page_offers_no_reveal_of_the_old_one(fulfilled, client, api):
    from keys_app.entitlements import entitlement_key_rotate

    session, _, token = fulfilled
    old = EntitlementKey.objects.get(session_id=session.pk)
    new = entitlement_key_rotate(key=old, actor="test").key

    page = client.get(f"/access/{token}").content.decode()

    assert new.display in page and "replaced your key" in page and "Reveal my key" not in page
    # the buyer can still get a key of their own, shown once
    replaced = client.post(f"/access/{token}/rotate-key").context["revealed_key"]
    assert api.post("/keys/verify", {"key": replaced}, format="json").json()["code"] == "valid"
