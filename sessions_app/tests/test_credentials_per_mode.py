"""Credentials per mode: a test session only ever reaches test credentials, a live one live ones.

The Stripe calls go over HTTP (the stripe SDK, through STRIPE_API_BASE) to a recording server on
127.0.0.1, so the key each session sends is read off the wire, not off a mock.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keys_app.services import key_issue
from sessions_app.models import PaymentSession, Status, Web3Charge, WebhookEvent
from sessions_app.providers import onecom_provider, stripe_provider
from sessions_app.tests.conftest import stripe_event
from sessions_app.tests.web3_support import NATIVE_ETH, configure_merchant

TEST_KEY = "sk_test_" + "T" * 24
LIVE_KEY = "sk_live_" + "L" * 24
TEST_WHSEC = "whsec_" + "3e9a1c07b5d2f468" * 4
LIVE_WHSEC = "whsec_" + "b7c40f2e9d1a6358" * 4


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str]

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps({"id": "cs_test_rec", "object": "checkout.session",
                           "url": "https://checkout.stripe.test/c/pay/cs_test_rec"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stripe_api(settings):
    """A Stripe API stand-in on 127.0.0.1 that records the key of every request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{server.server_address[1]}"
    settings.STRIPE_CHECKOUT_FLOW = "checkout"
    try:
        yield server.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _pay_with_card(client, session: PaymentSession):
    return client.post(f"/checkout/{session.pk}/pay/stripe", HTTP_ACCEPT="application/json")


# ---------------------------------------------------------------- Stripe keys


def test_each_session_sends_the_key_of_its_own_mode(make_session, client, stripe_api, settings):
    settings.STRIPE_TEST_SECRET_KEY, settings.STRIPE_LIVE_SECRET_KEY = TEST_KEY, LIVE_KEY
    test_session, live_session = make_session(mode="test", customer_email="buyer@example.test"), make_session(
        mode="live", customer_email="buyer@example.test")

    assert _pay_with_card(client, test_session).status_code == 200
    assert _pay_with_card(client, live_session).status_code == 200

    assert stripe_api == [f"Bearer {TEST_KEY}", f"Bearer {LIVE_KEY}"]


@pytest.mark.parametrize(("session_mode", "configured"), [("test", "live"), ("live", "test")])
def test_a_session_never_reaches_the_key_of_the_other_mode(make_session, client, stripe_api, settings,
                                                           session_mode, configured):
    # given only the other mode's key
    settings.STRIPE_TEST_SECRET_KEY = TEST_KEY if configured == "test" else ""
    settings.STRIPE_LIVE_SECRET_KEY = LIVE_KEY if configured == "live" else ""
    session = make_session(mode=session_mode, customer_email="buyer@example.test")

    # when its customer pays by card
    response = _pay_with_card(client, session)

    # then card payments are not configured for it, the button is hidden, and Stripe heard nothing
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_not_configured"
    assert "Pay with card" not in client.get(f"/checkout?session={session.pk}").text
    assert stripe_api == []


def test_a_key_of_the_wrong_mode_set_at_run_time_is_not_used(make_session, client, stripe_api, settings):
    settings.STRIPE_TEST_SECRET_KEY = LIVE_KEY
    session = make_session(mode="test", customer_email="buyer@example.test")

    response = _pay_with_card(client, session)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_misconfigured"
    assert stripe_api == []


# ---------------------------------------------------------------- Stripe webhooks


@pytest.fixture
def separate_stripe_secrets(settings):
    settings.STRIPE_TEST_WEBHOOK_SECRETS, settings.STRIPE_LIVE_WEBHOOK_SECRETS = [TEST_WHSEC], [LIVE_WHSEC]


def _deliver_stripe(client, event: dict, secret: str):
    body = json.dumps(event)
    return client.post("/webhooks/stripe", body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body, secret))


@pytest.mark.parametrize(("mode", "wrong_secret"), [("test", LIVE_WHSEC), ("live", TEST_WHSEC)], ids=["test", "live"])
def test_a_stripe_event_signed_with_the_other_modes_secret_is_refused(make_session, client, separate_stripe_secrets,
                                                                      mode, wrong_secret):
    session = make_session(mode=mode)

    response = _deliver_stripe(client, stripe_event(session, livemode=mode == "live"), wrong_secret)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_invalid"
    assert not WebhookEvent.objects.exists()
    session.refresh_from_db()
    assert session.status == Status.CREATED


@pytest.mark.parametrize(("mode", "secret"), [("test", TEST_WHSEC), ("live", LIVE_WHSEC)], ids=["test", "live"])
def test_a_stripe_event_signed_with_its_modes_secret_pays(make_session, client, separate_stripe_secrets, mode, secret):
    session = make_session(mode=mode)

    response = _deliver_stripe(client, stripe_event(session, livemode=mode == "live"), secret)

    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.status == Status.PAID


# ---------------------------------------------------------------- One.com


ONECOM_TEST = "whsec_" + "VGVzdE1vZGVTZWNyZXRCeXRlczAxMjM0NTY3ODlhYmNkZWY="
ONECOM_LIVE = "whsec_" + "TGl2ZU1vZGVTZWNyZXRCeXRlczAxMjM0NTY3ODlhYmNkZWY="


@pytest.fixture
def onecom_per_mode(merchant, settings):
    merchant.enabled_providers = ["stripe", "onecom"]
    merchant.save(update_fields=["enabled_providers"])
    settings.ONECOM_TEST_WEBHOOK_SECRET, settings.ONECOM_LIVE_WEBHOOK_SECRET = ONECOM_TEST, ONECOM_LIVE
    settings.ONECOM_TEST_CHECKOUT_URL = "https://pay.one.test/sandbox"
    settings.ONECOM_LIVE_CHECKOUT_URL = "https://pay.one.test/live"


def _deliver_onecom(client, session: PaymentSession, secret: str):
    body = onecom_provider.dumps(onecom_provider.test_event(
        session_id=str(session.pk), event_type="payment.succeeded", amount=session.amount, currency=session.currency))
    headers = onecom_provider.sign(body, secret=secret)
    return client.post("/webhooks/onecom", body, content_type="application/json",
                       **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})


@pytest.mark.parametrize(("mode", "other_secret"), [("test", ONECOM_LIVE), ("live", ONECOM_TEST)], ids=["test", "live"])
def test_a_onecom_callback_signed_with_the_other_modes_secret_moves_nothing(make_session, client, onecom_per_mode,
                                                                            mode, other_secret):
    session = make_session(mode=mode, providers=["onecom"])

    response = _deliver_onecom(client, session, other_secret)

    assert response.json()["outcome"] == "rejected"
    assert WebhookEvent.objects.get().error == "livemode_mismatch"
    session.refresh_from_db()
    assert session.status == Status.CREATED


@pytest.mark.parametrize(("mode", "secret"), [("test", ONECOM_TEST), ("live", ONECOM_LIVE)], ids=["test", "live"])
def test_a_onecom_callback_signed_with_its_modes_secret_pays(make_session, client, onecom_per_mode, mode, secret):
    session = make_session(mode=mode, providers=["onecom"])

    response = _deliver_onecom(client, session, secret)

    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.status == Status.PAID


@pytest.mark.parametrize(("mode", "page"), [("test", "https://pay.one.test/sandbox"),
                                            ("live", "https://pay.one.test/live")])
def test_a_onecom_payment_goes_to_the_page_of_its_mode_signed_with_its_secret(make_session, client, onecom_per_mode,
                                                                              mode, page):
    session = make_session(mode=mode, providers=["onecom"], customer_email="buyer@example.test")

    response = client.post(f"/checkout/{session.pk}/pay/onecom")

    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(page + "?")
    from urllib.parse import parse_qs, urlsplit

    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    unsigned = {k: v for k, v in query.items() if k != "signature"}
    assert query["signature"] == onecom_provider.redirect_signature(unsigned, mode=mode)
    other = "live" if mode == "test" else "test"
    assert query["signature"] != onecom_provider.redirect_signature(unsigned, mode=other)


# ---------------------------------------------------------------- Web3


def test_each_session_is_served_on_the_chain_of_its_mode(make_session, merchant, eth_chain, settings):
    # given a test chain and a live chain
    configure_merchant(merchant, asset=NATIVE_ETH)
    settings.WEB3_LIVE_CHAIN_ID = 11155111

    test_session = make_session(mode="test", providers=["web3"])
    live_session = make_session(mode="live", providers=["web3"])

    assert Web3Charge.objects.get(session=test_session).chain_id == settings.WEB3_TEST_CHAIN_ID
    assert Web3Charge.objects.get(session=live_session).chain_id == 11155111


def test_a_live_web3_session_without_a_live_chain_is_refused(merchant, eth_chain, settings, api):
    configure_merchant(merchant, asset=NATIVE_ETH)
    settings.WEB3_LIVE_CHAIN_ID = 0
    live = key_issue(account=merchant, mode="live")
    api.credentials(HTTP_X_API_KEY=live.plaintext)

    response = api.post("/create_session", {"amount": "30.00", "currency": "EUR", "providers": ["web3"]},
                        format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "web3_not_configured"
    assert not Web3Charge.objects.exists()
