"""The embedded default (`make run`): SQLite, no broker, console email. The whole loop over HTTP."""

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from invoices_app.tests.conftest import BASE_DIR, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def embedded_server(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "EMAIL_HOST", "PUBLIC_BASE_URL", "CSRF_TRUSTED_ORIGINS"}
           and not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
    env.update({"ALLOW_DEBUG": "1", "DATA_DIR": str(tmp_path), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "PYTHONUNBUFFERED": "1"})
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True, capture_output=True)
    seeded = subprocess.run([*manage, "seed_demo"], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True)
    api_key = re.search(r"API_KEY=(\S+)", seeded.stdout).group(1)
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=BASE_DIR, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "Quit the server" in log.read_text() or proc.poll() is not None, timeout=60,
                   message="runserver to start")
        assert proc.poll() is None, log.read_text()
        yield f"http://127.0.0.1:{port}", api_key, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_readme_loop_ends_with_a_console_email_whose_link_works(embedded_server):
    base, api_key, log = embedded_server
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(path, data=None, headers=None, opener=browser):
        body = None
        if isinstance(data, dict):
            body = urllib.parse.urlencode(data).encode()
        elif data is not None:
            body = data
        request = urllib.request.Request(base + path, data=body, headers=headers or {})
        with opener.open(request, timeout=30) as response:
            return response.status, response.read(), response.headers

    # create a session over the API
    status, body, _ = call("/create_session", json.dumps({"amount": "25.00", "description": "Starter"}).encode(),
                           {"X-API-Key": api_key, "Content-Type": "application/json"},
                           opener=urllib.request.build_opener())
    assert status == 201, body
    session_id = json.loads(body)["session_id"]

    # pay it with the checkout page's test-mode simulator
    call(f"/checkout?session={session_id}")
    jar = next(h.cookiejar for h in browser.handlers if isinstance(h, urllib.request.HTTPCookieProcessor))
    token = next(c.value for c in jar if c.name == "csrftoken")
    status, _, _ = call(f"/checkout/{session_id}/simulate",
                        {"csrfmiddlewaretoken": token, "outcome": "success", "email": "buyer@example.com"})
    assert status == 200
    status, body, _ = call(f"/session/{session_id}/status", opener=urllib.request.build_opener())
    assert json.loads(body)["status"] == "paid"

    # the receipt is printed to the console with a working access link
    link = wait_until(lambda: re.search(rf"{re.escape(base)}/access/(\S+)", log.read_text()), timeout=60,
                      message="the receipt on the console").group(0)
    status, page, _ = call(link.removeprefix(base))
    assert status == 200 and b"INV-" in page
    status, pdf, headers = call(link.removeprefix(base) + "/invoice.pdf")
    assert status == 200 and pdf.startswith(b"%PDF") and headers["Content-Type"] == "application/pdf"
    token = next(c.value for c in jar if c.name == "csrftoken")
    status, revealed, _ = call(link.removeprefix(base) + "/reveal-key", {"csrfmiddlewaretoken": token})
    key = re.search(rb'id="api-key">(ek_test_\w+)<', revealed).group(1).decode()
    # and the merchant's service verifies the key the customer bought
    status, verified, _ = call("/keys/verify", json.dumps({"key": key}).encode(),
                               {"X-API-Key": api_key, "Content-Type": "application/json"},
                               opener=urllib.request.build_opener())
    assert status == 200 and json.loads(verified)["code"] == "valid"
    assert json.loads(verified)["key"]["customer_email"] == "buyer@example.com"
