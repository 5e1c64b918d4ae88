import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.http import StreamingHttpResponse
from django.utils import timezone

from dashboard.tests.conftest import make_session
from keys_app.models import Account
from sessions_app.models import PaymentSession


def _log_in(client, username: str, password: str) -> bool:
    """Through the admin's login form, as a person does (the lockout backend needs the request)."""
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return response.status_code == 302 and response["Location"] == "/admin/"


def _run(*args) -> list[str]:
    out = io.StringIO()
    call_command("create_merchant", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.mark.django_db
def test_create_merchant_with_login_prints_a_password_that_opens_the_dashboard(client):
    lines = _run("Shop One", "owner@shop.test", "--with-login")

    password = lines[lines.index("Password (shown once, change it after signing in):") + 1]
    user = get_user_model().objects.get(username="owner@shop.test")
    assert user.is_staff and not user.is_superuser
    assert Account.objects.get(email="owner@shop.test").user == user
    assert _log_in(client, "owner@shop.test", password)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_create_merchant_can_print_a_set_password_link_instead(client):
    lines = _run("Shop Two", "two@shop.test", "--with-login", "--password-link")

    link = next(line for line in lines if "/admin/set-password/" in line)
    path = link.split("127.0.0.1:8000", 1)[1] if "127.0.0.1:8000" in link else link
    form = client.get(path, follow=True)
    assert form.status_code == 200 and "new_password1" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "A-long-new-passphrase-42",
                                                    "new_password2": "A-long-new-passphrase-42"})
    assert done.status_code == 302
    assert _log_in(client, "two@shop.test", "A-long-new-passphrase-42")


@pytest.mark.django_db
def test_create_merchant_without_login_creates_no_user():
    _run("Shop Three", "three@shop.test")

    assert not get_user_model().objects.filter(username="three@shop.test").exists()
    with pytest.raises(CommandError):
        _run("Shop Four", "four@shop.test", "--password-link")


@pytest.mark.django_db
def test_a_second_login_for_the_same_email_is_refused():
    _run("Shop Five", "five@shop.test", "--with-login")

    with pytest.raises(CommandError):
        _run("Shop Five Again", "five@shop.test", "--with-login")
    assert Account.objects.filter(email="five@shop.test").count() == 1


def test_the_paid_export_is_streamed_with_every_paid_session_and_formulas_defused(merchant_client, merchant):
    # given paid sessions (one with a hostile customer name) and sessions that are not paid
    now = timezone.now()
    PaymentSession.objects.bulk_create([
        PaymentSession(account=merchant, amount=Decimal("1.00") + i, currency="EUR", mode="test", status="paid",
                       paid_at=now - timedelta(minutes=i), expires_at=now, customer_name=f"Buyer {i}")
        for i in range(2500)
    ])
    make_session(merchant, status="failed")
    make_session(merchant, status="created")
    hostile = make_session(merchant, status="paid", customer_name="=HYPERLINK(\"http://x\")")

    # when the merchant exports
    response = merchant_client.get("/admin/export/paid-sessions.csv")

    # then it streams a CSV of exactly the paid sessions
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["session_id", "paid_at", "amount", "currency"]
    assert len(rows) == 1 + 2501
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id[str(hostile.pk)][8] == "'=HYPERLINK(\"http://x\")"


def test_an_existing_merchant_gets_a_login_once(merchant, client):
    out = io.StringIO()
    call_command("merchant_login", merchant.email, stdout=out)

    password = out.getvalue().splitlines()[-1]
    assert _log_in(client, merchant.email, password)
    with pytest.raises(CommandError, match="already has a login"):
        call_command("merchant_login", str(merchant.pk), stdout=io.StringIO())
    with pytest.raises(CommandError, match="found 0"):
        call_command("merchant_login", "nobody@nowhere.test", stdout=io.StringIO())
