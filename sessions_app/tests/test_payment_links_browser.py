"""The README's payment-link example in a real browser (Playwright driving Debian's chromium).

A static merchant page is served from a second loopback origin (127.0.0.2), as a shop's own
web server would serve it; the service runs on the live server (localhost). The page is the
README's example itself, with its placeholders filled in.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

# Playwright's sync API runs an event loop in this thread; the ORM calls between page actions are
# plain synchronous calls and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from keys_app.publishable import publishable_key_ensure  # noqa: E402
from sessions_app.links.services import link_create  # noqa: E402
from sessions_app.models import PaymentSession, Status  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
README = Path(django_settings.BASE_DIR) / "README.md"

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def readme_example() -> str:
    """The HTML block that follows the payment-link-example marker in the README."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- payment-link-example -->\n```html\n(.*?)```", text, re.S)
    assert match, "the README lost its payment-link example"
    return match.group(1)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class MerchantSite:
    """A static web server on a loopback address of its own: another origin than the service."""

    def __init__(self, root: Path, host: str) -> None:
        self.server = ThreadingHTTPServer((host, 0), functools.partial(_Quiet, directory=str(root)))
        self.origin = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shop(tmp_path, live_server, merchant, settings):
    """The merchant's static site with the README's page on it, its payment link and its key."""
    settings.PUBLIC_BASE_URL = live_server.url
    site = MerchantSite(tmp_path, "127.0.0.2")
    (tmp_path / "thanks.html").write_text("<h1 id='thanks'>Thank you for buying the Pro plan</h1>")
    link = link_create(account=merchant, mode="test", actor="test", amount=__import__("decimal").Decimal("99.99"),
                       description="Pro plan", success_url=f"{site.origin}/thanks.html")
    key = publishable_key_ensure(account=merchant, mode="test").key
    page = (readme_example().replace("http://127.0.0.1:8000", live_server.url).replace("pk_test_…", key)
            .replace("plink_…", link.pk).replace("3kTm…", link.slug))
    (tmp_path / "buy.html").write_text(f"<!doctype html><html><body>{page}</body></html>")
    try:
        yield site, link
    finally:
        site.close()


def _pay_on_checkout(page) -> None:
    expect(page.get_by_test_id("amount")).to_contain_text("99.99 EUR")
    page.fill("#email", "buyer@example.test")
    page.get_by_role("button", name="Simulate successful payment").click()
    expect(page.get_by_test_id("status")).to_contain_text("Payment received")


def test_the_readme_page_buys_with_a_publishable_key_and_ends_on_success_url(browser, shop, merchant):
    site, link = shop
    merchant.allowed_origins = [site.origin]
    merchant.save(update_fields=["allowed_origins"])
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        # when the buyer presses Buy on the shop's own page
        page.goto(f"{site.origin}/buy.html")
        page.get_by_role("button", name="Buy the Pro plan").click()
        # then the page followed data.url to the checkout, at the link's price
        page.wait_for_url(re.compile(r"/checkout\?session="))
        _pay_on_checkout(page)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "payment-link-paid.png"), full_page=True)
        page.get_by_role("link", name=re.compile("Return to")).click()
        page.wait_for_url(f"{site.origin}/thanks.html")
        expect(page.locator("#thanks")).to_be_visible()
    finally:
        context.close()
    session = PaymentSession.objects.get()
    assert (session.status, session.payment_link_id, str(session.amount)) == (Status.PAID, link.pk, "99.990")


def test_the_plain_link_without_javascript_reaches_the_checkout(browser, shop, merchant):
    site, link = shop
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"{site.origin}/buy.html")
        page.get_by_role("link", name="Buy the Pro plan").click()
        page.wait_for_url(re.compile(r"/checkout\?session="))
        expect(page.get_by_test_id("amount")).to_contain_text("99.99 EUR")
    finally:
        context.close()
    assert PaymentSession.objects.get().payment_link_id == link.pk


def test_the_same_page_from_an_origin_not_allowed_is_blocked_by_the_browser(browser, shop, merchant, tmp_path):
    site, link = shop
    merchant.allowed_origins = [site.origin]
    merchant.save(update_fields=["allowed_origins"])
    # the very same page, copied to another origin
    other = MerchantSite(tmp_path, "127.0.0.3")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(msg.text))
    try:
        page.goto(f"{other.origin}/buy.html")
        with page.expect_console_message(lambda msg: "CORS policy" in msg.text):
            page.get_by_role("button", name="Buy the Pro plan").click()
        assert page.url == f"{other.origin}/buy.html"
    finally:
        context.close()
        other.close()
    assert any("blocked by CORS policy" in m for m in messages), messages
    # the preflight was refused, so the request itself was never sent
    assert PaymentSession.objects.count() == 0
