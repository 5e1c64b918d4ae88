"""The Content-Security-Policy in a real browser: the checkout and access pages render styled,
the checkout's forms work, and Chromium reports no violation."""

from __future__ import annotations

import os

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls between page actions
# are plain synchronous calls and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import sync_playwright  # noqa: E402

from sessions_app.models import PaymentSession, Status  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

# Collects every violation the page reports, before any of its own code runs.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.console_messages = console
    yield page
    context.close()


def _violations(page) -> list[str]:
    reported = page.evaluate("window.__cspViolations")
    refused = [m for m in page.console_messages if "Content Security Policy" in m]
    return reported + refused


def test_the_checkout_page_works_under_its_policy_in_chromium(page, api, live_server, settings):
    # given an open session and its checkout page, served with the policy
    settings.PUBLIC_BASE_URL = live_server.url
    session_id = api.post("/create_session", {"amount": "19.00"}, format="json").json()["session_id"]
    response = page.goto(f"{live_server.url}/checkout?session={session_id}")
    assert "script-src 'self'" in response.headers["content-security-policy"]

    # then the stylesheet applied (no inline style was needed) and nothing was blocked
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(246, 248, 250)"
    assert _violations(page) == []

    # when the customer pays through the page's form
    page.fill("#email", "buyer@example.test")
    page.click("button[value=success]")
    page.wait_for_url(f"**/checkout?session={session_id}")

    # then the session is paid, the page says so, and still nothing was blocked
    assert PaymentSession.objects.get(pk=session_id).status == Status.PAID
    assert "Payment received" in page.text_content("[data-testid=status]")
    assert _violations(page) == []


def test_a_violation_would_be_seen(page, live_server, api):
    # The check above must be able to fail: inject an inline script and watch it reported.
    session_id = api.post("/create_session", {"amount": "19.00"}, format="json").json()["session_id"]
    page.goto(f"{live_server.url}/checkout?session={session_id}")
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                             document.head.appendChild(s); }""")
    page.wait_for_function("window.__cspViolations.length > 0", timeout=5000)
    assert page.evaluate("window.__ran") is None
    assert any(v.startswith("script-src") for v in _violations(page))
