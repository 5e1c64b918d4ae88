"""The checkout page in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

# Playwright's sync API runs an event loop in this thread; the ORM calls between page actions are
# plain synchronous calls and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from sessions_app.models import PaymentSession, Status  # noqa: E402
from sessions_app.tests.web3_support import NATIVE_ETH, configure_merchant  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# An EIP-1193 provider as a browser wallet injects it, backed by anvil's unlocked accounts.
WALLET = """
(() => {
  const rpc = (method, params) => fetch(%(url)r, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({jsonrpc: "2.0", id: Date.now(), method, params: params || []})})
    .then(r => r.json()).then(j => j.error ? Promise.reject(j.error) : j.result);
  window.ethereum = {
    isMetaMask: false,
    request: ({method, params}) => {
      if (method === "eth_requestAccounts") return Promise.resolve([%(account)r]);
      return rpc(method, params);
    },
  };
})();
"""


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_pay_with_wallet_sends_the_quoted_payment_and_the_page_turns_paid(browser, anvil_node, merchant, api,
                                                                         live_server, settings):
    # given a web3 session and a customer whose browser has a wallet
    settings.PUBLIC_BASE_URL = live_server.url
    # The injected test wallet talks to the node from the page, as a wallet extension would.
    settings.CSP_CONNECT_SRC = [anvil_node.url]
    configure_merchant(merchant, asset=NATIVE_ETH)
    created = api.post("/create_session", {"amount": "30.00", "providers": ["web3"]}, format="json").json()
    payer = anvil_node.w3.eth.accounts[2]
    before = anvil_node.w3.eth.get_balance(created["web3"]["address"])
    context = browser.new_context()
    context.add_init_script(WALLET % {"url": anvil_node.url, "account": payer})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(created["checkout_url"])
        expect(page.get_by_test_id("web3-address")).to_have_text(created["web3"]["address"])
        expect(page.get_by_test_id("web3-qr").locator("svg")).to_be_visible()

        # when they enter their email and press "Pay with wallet"
        page.fill("#email", "buyer@example.test")
        page.get_by_test_id("pay-web3").click()

        # then the wallet sent exactly the quote, and the page shows the payment without a manual reload
        expect(page.get_by_test_id("status")).to_contain_text("Payment received")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "checkout-web3-paid.png"), full_page=True)
    finally:
        context.close()
    after = anvil_node.w3.eth.get_balance(created["web3"]["address"])
    assert after - before == int(created["web3"]["amount"])
    session = PaymentSession.objects.get(pk=created["session_id"])
    assert (session.status, session.customer_email) == (Status.PAID, "buyer@example.test")


def test_the_one_com_simulator_pays_from_the_page(browser, merchant, api, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    merchant.enabled_providers = ["stripe", "onecom"]
    merchant.save(update_fields=["enabled_providers"])
    created = api.post("/create_session", {"amount": "12.00", "providers": ["onecom"]}, format="json").json()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(created["checkout_url"])
        page.fill("#email", "buyer@example.test")
        page.get_by_test_id("simulate-onecom-success").click()

        expect(page.get_by_test_id("status")).to_contain_text("Payment received")
    finally:
        context.close()
    assert PaymentSession.objects.get(pk=created["session_id"]).provider == "onecom"
