"""The dashboard and the checkout in a real browser: Playwright driving Debian's chromium."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect, sync_playwright

from dashboard.tests.conftest import make_session

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are plain synchronous calls and safe here. Only for these tests.
    with pytest.MonkeyPatch.context() as mp, sync_playwright() as p:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("Welcome")


def api_get(base: str, path: str, key: str) -> int:
    request = urllib.request.Request(f"{base}{path}", headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_a_merchant_logs_in_sees_its_own_data_and_chart_and_rotates_a_key(live_server, page, merchant,
                                                                          other_merchant):
    from keys_app.services import merchant_login_create

    # given a merchant with a login and paid sessions, and another merchant's paid session
    login = merchant_login_create(account=merchant)
    make_session(merchant, amount="42.00", status="paid", customer_email="buyer@acme.test")
    make_session(merchant, amount="8.00", status="paid", customer_email="second@acme.test")
    make_session(merchant, amount="3.00", status="failed", failure_reason="card_declined")
    make_session(other_merchant, amount="999.00", status="paid", customer_email="buyer@other.test")
    base = live_server.url

    # when the merchant logs in
    log_in(page, base, login.user.username, login.password)

    # then the dashboard opens on live figures (none yet), and shows test figures on request
    expect(page.locator("#content-main")).to_have_attribute("data-mode", "live")
    expect(page.locator('[data-testid="revenue-empty"]')).to_be_visible()
    page.click('[data-testid="mode-test"]')
    expect(page.locator("#content-main")).to_have_attribute("data-mode", "test")

    # and it draws its own revenue and nobody else's
    bars = page.locator('[data-testid="revenue-EUR"] svg rect.bar')
    expect(bars).to_have_count(30)
    values = [Decimal(v) for v in bars.evaluate_all("els => els.map(e => e.dataset.value)")]
    assert sum(values) == Decimal("50.00")
    assert max(values) > 0
    assert page.locator('[data-testid="revenue-EUR"] svg rect.bar[height="0.0"]').count() == 29
    expect(page.locator('[data-testid="total-EUR"]')).to_have_text("50.00")
    assert "999.00" not in page.locator("#content-main").inner_text()
    screenshot(page, "merchant-dashboard")

    # and its session list holds its own sessions only
    page.goto(f"{base}/admin/sessions_app/paymentsession/")
    expect(page.locator("#result_list")).to_contain_text("buyer@acme.test")
    expect(page.locator("#result_list")).not_to_contain_text("buyer@other.test")
    screenshot(page, "merchant-sessions")

    # when it rotates its key with a one-hour overlap
    page.goto(f"{base}/admin/keys_app/apikey/{merchant.api_key.pk}/change/")
    page.click('[data-testid="rotate"]')
    page.select_option("#id_overlap", "1h")
    page.click('[data-testid="rotate-submit"]')

    # then the new key is shown, works, and the old one still works during the overlap
    new_key = page.locator('[data-testid="new-key"]').inner_text().strip()
    assert new_key.startswith("sk_test_")
    screenshot(page, "merchant-key-rotated")
    assert api_get(base, "/account", new_key) == 200
    assert api_get(base, "/account", merchant.plaintext_key) == 200

    # and it is never shown again
    page.click("text=Done")
    page.goto(f"{base}/admin/keys_app/apikey/")
    assert new_key not in page.content()
    page.reload()
    assert new_key not in page.content()


@pytest.mark.django_db(transaction=True)
def test_staff_upgrade_a_merchant_to_a_live_key(live_server, page, merchant, django_user_model):
    from keys_app.models import ApiKey

    django_user_model.objects.create_superuser("staff", "staff@payments.test", "staff-password-123")
    base = live_server.url
    log_in(page, base, "staff", "staff-password-123")

    page.goto(f"{base}/admin/keys_app/apikey/{merchant.api_key.pk}/change/")
    page.click('[data-testid="upgrade"]')
    page.click('[data-testid="upgrade-submit"]')

    live_key = page.locator('[data-testid="new-key"]').inner_text().strip()
    assert live_key.startswith("sk_live_")
    screenshot(page, "staff-live-key")
    assert ApiKey.objects.filter(account=merchant, mode="live", status="active").count() == 1
    assert api_get(base, "/account", live_key) == 200


def pay_on_checkout(page: Page, base: str, merchant, *, email: str) -> str:
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_X_API_KEY=merchant.plaintext_key)
    created = api.post("/create_session", {"amount": "19.90", "description": "Pro plan"}, format="json").json()

    page.goto(f"{base}/checkout?session={created['session_id']}")
    expect(page.locator('[data-testid="amount"]')).to_have_text("19.90 EUR")
    page.fill("#email", email)
    page.click("text=Simulate successful payment")
    expect(page.locator('[data-testid="status"]')).to_contain_text("Payment received")
    return created["session_id"]


@pytest.mark.django_db(transaction=True)
def test_a_customer_pays_on_the_checkout_page_and_the_merchant_sees_it(live_server, page, browser, merchant):
    from invoices_app.models import Invoice
    from keys_app.models import EntitlementKey
    from keys_app.services import merchant_login_create
    from sessions_app.models import PaymentSession

    base = live_server.url
    session_id = pay_on_checkout(page, base, merchant, email="customer@buyer.test")

    screenshot(page, "checkout-paid")
    session = PaymentSession.objects.get(pk=session_id)
    assert (session.status, session.customer_email) == ("paid", "customer@buyer.test")
    assert json.loads(urllib.request.urlopen(  # noqa: S310 - loopback test server
        f"{base}/session/{session.pk}/status", timeout=10).read())["status"] == "paid"

    # and the merchant finds it with its timeline, delivery, invoice and the buyer's key
    login = merchant_login_create(account=merchant)
    merchant_page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(merchant_page, base, login.user.username, login.password)
    merchant_page.goto(f"{base}/admin/sessions_app/paymentsession/?q=customer@buyer.test")
    merchant_page.click(f"text={session_id}")
    expect(merchant_page.locator("#session-timeline")).to_contain_text("session.paid")
    expect(merchant_page.locator("#session-deliveries")).to_contain_text("payment_intent.succeeded")
    expect(merchant_page.locator('[data-testid="session-invoice"]')).to_contain_text(
        Invoice.objects.get(session_id=session_id).number)
    expect(merchant_page.locator('[data-testid="session-key"]')).to_contain_text(
        EntitlementKey.objects.get(session_id=session_id).display)
    screenshot(merchant_page, "merchant-session-detail")
    merchant_page.context.close()


@pytest.mark.django_db(transaction=True)
def test_the_customer_opens_the_emailed_access_link_and_downloads_the_pdf(live_server, page, merchant, tmp_path):
    from django.core import mail

    from invoices_app.models import Invoice

    # given a customer who paid on the checkout page (fulfilment runs when the payment commits)
    base = live_server.url
    mail.outbox.clear()
    merchant.test_email_recipients = ["reader@buyer.test"]  # test mode mails only listed inboxes
    merchant.save(update_fields=["test_email_recipients"])
    session_id = pay_on_checkout(page, base, merchant, email="reader@buyer.test")
    invoice = Invoice.objects.get(session_id=session_id)

    # when they open the link from their receipt
    receipt = next(m for m in mail.outbox if m.to == ["reader@buyer.test"])
    link = next(line.strip() for line in receipt.body.splitlines() if "/access/" in line)
    page.goto(base + link[link.index("/access/"):])

    # then they see their invoice and download its PDF
    expect(page.locator("body")).to_contain_text(invoice.number)
    screenshot(page, "access-link")
    with page.expect_download() as download_info:
        page.click("text=Download the invoice (PDF)")
    download = download_info.value
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    assert download.suggested_filename == f"{invoice.number}.pdf"
    assert target.read_bytes().startswith(b"%PDF")
