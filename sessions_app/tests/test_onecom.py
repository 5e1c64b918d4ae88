"""One.com: the hosted-payment redirect out and Standard-Webhooks-signed callbacks in."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from audit.models import AuditEvent
from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.providers import onecom_provider

FAKE_PAGE = Path(__file__).resolve().parents[2] / "tests" / "fakes" / "onecom_hosted_page.py"


@pytest.fixture
def onecom_merchant(merchant):
    merchant.enabled_providers = ["stripe", "onecom"]
    merchant.save(update_fields=["enabled_providers"])
    return merchant


def _session(api, **extra) -> PaymentSession:
    response = api.post("/create_session", {"amount": "99.99", "currency": "EUR", "providers": ["onecom"], **extra},
                        format="json")
    assert response.status_code == 201, response.content
    return PaymentSession.objects.get(pk=response.json()["session_id"])


def _deliver(client, payload: dict, *, msg_id: str | None = None, headers: dict | None = None):
    body = onecom_provider.dumps(payload)
    headers = headers or onecom_provider.sign(body, msg_id=msg_id)
    return client.post("/webhooks/onecom", body, content_type="application/json",
                       **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})


def _event(session: PaymentSession, event_type: str, **data) -> dict:
    payload = onecom_provider.test_event(session_id=str(session.pk), event_type=event_type, amount=session.amount,
                                         currency=session.currency)
    payload["data"].update(data)
    return payload


def test_a_signed_payment_succeeded_callback_pays_the_session(onecom_merchant, api, client):
    session = _session(api)

    response = _deliver(client, _event(session, "payment.succeeded", payment_id="pay_123"))

    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.status == Status.PAID
    assert (session.provider, session.provider_reference) == ("onecom", "pay_123")


def test_the_webhook_id_is_the_event_id_so_a_resend_changes_nothing(onecom_merchant, api, client):
    session = _session(api)
    payload = _event(session, "payment.succeeded")

    first = _deliver(client, payload, msg_id="msg_same")
    again = _deliver(client, payload, msg_id="msg_same")

    assert first.json()["outcome"] == "processed"
    assert again.json()["outcome"] == "duplicate"
    assert WebhookEvent.objects.filter(provider="onecom", event_id="msg_same").count() == 1
    assert AuditEvent.objects.filter(action="session.paid", subject_id=str(session.pk)).count() == 1


def test_it_rejects_a_bad_signature_and_stores_nothing(onecom_merchant, api, client):
    session = _session(api)
    body = onecom_provider.dumps(_event(session, "payment.succeeded"))
    headers = onecom_provider.sign(body, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")

    response = client.post("/webhooks/onecom", body, content_type="application/json",
                           **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_invalid"
    session.refresh_from_db()
    assert session.status == Status.CREATED
    assert not WebhookEvent.objects.filter(provider="onecom").exists()


@pytest.mark.parametrize("headers", [
    {},
    {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
    {"webhook-id": "msg_1", "webhook-timestamp": "now", "webhook-signature": "garbage"},
])
def test_it_rejects_missing_stale_or_malformed_signatures(onecom_merchant, api, client, headers):
    session = _session(api)

    response = _deliver(client, _event(session, "payment.succeeded"), headers=headers or {"x-none": "1"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("signature_invalid", "signature_malformed", "signature_missing")


def test_a_stale_but_correct_signature_is_rejected(onecom_merchant, api, client):
    session = _session(api)
    body = onecom_provider.dumps(_event(session, "payment.succeeded"))
    headers = onecom_provider.sign(body, timestamp=datetime.now(tz=UTC) - timedelta(minutes=10))

    response = _deliver(client, _event(session, "payment.succeeded"), headers=headers)

    assert response.status_code == 400
    session.refresh_from_db()
    assert session.status == Status.CREATED


def test_processing_then_failed_moves_the_session_forward_only(onecom_merchant, api, client):
    session = _session(api)

    _deliver(client, _event(session, "payment.processing"))
    session.refresh_from_db()
    assert session.status == Status.PENDING

    _deliver(client, _event(session, "payment.failed"))
    session.refresh_from_db()
    assert (session.status, session.payment_attempts_failed, session.last_payment_error_code) == (
        Status.PENDING, 1, "card_declined")

    _deliver(client, _event(session, "payment.failed", retryable=False))
    session.refresh_from_db()
    assert (session.status, session.failure_reason) == (Status.FAILED, "card_declined")

    late = _deliver(client, _event(session, "payment.succeeded"))
    assert late.json()["outcome"] == "late"
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert session.late_payments.count() == 1


def test_payment_expired_fails_the_session_as_expired(onecom_merchant, api, client):
    session = _session(api)

    _deliver(client, _event(session, "payment.expired"))

    session.refresh_from_db()
    assert (session.status, session.failure_reason) == (Status.FAILED, "expired")


@pytest.mark.parametrize("data, outcome", [
    ({"amount": "9.99"}, "rejected"),
    ({"currency": "USD"}, "rejected"),
])
def test_a_callback_for_another_amount_or_currency_does_not_pay(onecom_merchant, api, client, data, outcome):
    session = _session(api)

    response = _deliver(client, _event(session, "payment.succeeded", **data))

    assert response.json()["outcome"] == outcome
    session.refresh_from_db()
    assert session.status == Status.CREATED


@pytest.mark.parametrize("amount", [99.99, "abc", "99.999", "-1", None])
def test_an_amount_that_is_not_a_decimal_string_is_refused(onecom_merchant, api, client, amount):
    session = _session(api)

    response = _deliver(client, _event(session, "payment.succeeded", amount=amount))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_invalid"


def test_an_unknown_event_type_is_stored_and_ignored(onecom_merchant, api, client):
    session = _session(api)

    response = _deliver(client, _event(session, "payment.refund_requested"))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"


def test_pay_redirects_to_the_hosted_page_with_reference_amount_currency_and_return_url(
        onecom_merchant, api, client, settings):
    settings.ONECOM_TEST_CHECKOUT_URL = "https://pay.one.test/checkout"
    session = _session(api, customer_email="buyer@example.test")

    response = client.post(f"/checkout/{session.pk}/pay/onecom")

    assert response.status_code == 302
    url = urlsplit(response["Location"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://pay.one.test/checkout"
    assert query["reference"] == str(session.pk)
    assert (query["amount"], query["currency"]) == ("99.99", "EUR")
    assert query["return_url"] == f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}"
    assert query["notify_url"] == f"{settings.PUBLIC_BASE_URL}/webhooks/onecom"
    unsigned = {k: v for k, v in query.items() if k != "signature"}
    assert query["signature"] == onecom_provider.redirect_signature(unsigned)


def test_the_test_mode_simulator_pays_through_the_signed_webhook_path(onecom_merchant, api, client):
    session = _session(api)

    response = client.post(f"/checkout/{session.pk}/simulate",
                           {"provider": "onecom", "outcome": "success", "email": "buyer@example.test"})

    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == Status.PAID
    stored = WebhookEvent.objects.get(session=session)
    assert (stored.provider, stored.event_type) == ("onecom", "payment.succeeded")


def test_the_checkout_page_offers_one_com_only_when_the_session_allows_it(onecom_merchant, api, client):
    only_stripe = api.post("/create_session", {"amount": "5.00", "providers": ["stripe"]}, format="json").json()
    with_onecom = _session(api)

    assert 'data-provider="onecom"' not in client.get(f"/checkout?session={only_stripe['session_id']}").text
    assert 'data-provider="onecom"' in client.get(f"/checkout?session={with_onecom.pk}").text
    refused = client.post(f"/checkout/{only_stripe['session_id']}/pay/onecom", {"email": "a@b.test"})
    assert refused.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_end_to_end_the_customer_pays_on_the_hosted_page_and_the_callback_pays_the_session(
        onecom_merchant, api, live_server, settings, tmp_path):
    # given One.com's hosted page, played by a separate process on 127.0.0.1 that shares our secret
    page = subprocess.Popen([sys.executable, str(FAKE_PAGE), settings.ONECOM_TEST_WEBHOOK_SECRET],  # noqa: S603
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        port = int(page.stdout.readline())
        settings.ONECOM_TEST_CHECKOUT_URL = f"http://127.0.0.1:{port}/pay"
        settings.PUBLIC_BASE_URL = live_server.url
        session = _session(api)
        browser = requests.Session()
        checkout_url = f"{live_server.url}/checkout?session={session.pk}"
        browser.get(checkout_url, timeout=10)

        # when the customer picks One.com, pays there and comes back
        landed = browser.post(f"{live_server.url}/checkout/{session.pk}/pay/onecom",
                              data={"email": "buyer@example.test", "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
                              headers={"Referer": checkout_url}, timeout=20)

        # then the signed callback has paid the session before the customer is back on our page
        assert landed.status_code == 200
        assert landed.url == checkout_url
        assert "Payment received" in landed.text
        session.refresh_from_db()
        assert (session.status, session.provider, session.customer_email) == (Status.PAID, "onecom",
                                                                              "buyer@example.test")
        assert WebhookEvent.objects.get(session=session).event_type == "payment.succeeded"
    finally:
        page.kill()
        page.wait(timeout=5)
