"""The customer's checkout page, its test-mode payment simulator, and manage.py send_test_webhook."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.tests.conftest import stripe_event

pytestmark = pytest.mark.django_db


def _page(client, session) -> tuple[int, str]:
    response = client.get(f"/checkout?session={session.pk}")
    return response.status_code, response.content.decode()


def test_it_shows_merchant_description_amount_and_asks_for_an_email(client, make_session):
    session = make_session(amount="99.99", description="Pro plan, 1 year")

    status, html = _page(client, session)

    assert status == 200
    assert "Acme GmbH" in html
    assert "Pro plan, 1 year" in html
    assert "99.99 EUR" in html
    assert 'name="email"' in html
    assert "TEST MODE" in html
    assert "Simulate successful payment" in html and "Simulate declined card" in html
    assert 'data-provider="stripe"' in html


def test_it_does_not_ask_for_an_email_the_merchant_already_sent(client, make_session):
    status, html = _page(client, make_session(customer_email="buyer@example.com"))

    assert status == 200
    assert 'name="email"' not in html
    assert "buyer@example.com" in html


def test_it_shows_amounts_in_the_currencys_own_decimals(client, make_session):
    _, html = _page(client, make_session(amount="1500", currency="JPY"))

    assert "1500 JPY" in html


def test_it_escapes_what_the_merchant_wrote(client, make_session):
    _, html = _page(client, make_session(description='<script>alert("x")</script>'))

    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(("event_type", "text"), [
    ("payment_intent.succeeded", "Payment received"),
    ("payment_intent.payment_failed", "Your payment was declined: Your card was declined."),
    ("payment_intent.canceled", "The payment failed (canceled)"),
    ("checkout.session.expired", "This payment link has expired"),
    ("payment_intent.processing", "Payment processing"),
])
def test_it_says_what_became_of_the_session(client, make_session, deliver, event_type, text):
    session = make_session(customer_email="buyer@example.com")
    deliver(stripe_event(session, event_type))

    status, html = _page(client, session)

    assert status == 200
    assert text in html
    # The customer may go on paying while the session is open (a decline is an attempt).
    still_open = event_type in ("payment_intent.processing", "payment_intent.payment_failed")
    assert ("Simulate successful payment" in html) == still_open


def test_an_open_session_past_its_expiry_says_it_expired(client, make_session):
    session = make_session()
    PaymentSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    _, html = _page(client, session)

    assert "This payment link has expired" in html
    assert "Simulate successful payment" not in html


@pytest.mark.parametrize("query", ["", "?session=", "?session=not-a-uuid", "?session=5f0c7a2e-2b83-4d8e-9d3a-8d6f0c7b1e22"])
def test_a_bad_or_missing_session_id_is_a_404_page(client, query):
    response = client.get(f"/checkout{query}")

    assert response.status_code == 404
    assert "Payment not found" in response.content.decode()


def test_the_simulator_pays_through_the_signed_webhook_path(make_session):
    # given a test-mode session without an email, and a browser that enforces CSRF like a real one
    session = make_session()
    browser = Client(enforce_csrf_checks=True)
    html = browser.get(f"/checkout?session={session.pk}").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    # when the customer enters an email and presses "Simulate successful payment"
    response = browser.post(f"/checkout/{session.pk}/simulate",
                            {"csrfmiddlewaretoken": token, "outcome": "success", "email": "buyer@example.com"})

    # then the session is paid by a stored, verified Stripe event, and the page says so
    assert response.status_code == 302
    assert response["Location"] == f"/checkout?session={session.pk}"
    session = PaymentSession.objects.get(pk=session.pk)
    assert (session.status, session.customer_email, session.provider) == (Status.PAID, "buyer@example.com", "stripe")
    event = WebhookEvent.objects.get()
    assert (event.provider, event.event_type, event.outcome) == ("stripe", "payment_intent.succeeded", "processed")
    assert "Payment received" in browser.get(response["Location"]).content.decode()


def test_the_simulator_refuses_a_post_without_the_csrf_token(make_session):
    session = make_session()

    response = Client(enforce_csrf_checks=True).post(f"/checkout/{session.pk}/simulate",
                                                     {"outcome": "success", "email": "buyer@example.com"})

    assert response.status_code == 403
    assert PaymentSession.objects.get(pk=session.pk).status == Status.CREATED


def test_the_simulator_can_decline_a_card_without_an_email_and_the_customer_may_retry(client, make_session):
    session = make_session()

    response = client.post(f"/checkout/{session.pk}/simulate", {"outcome": "failure"})

    assert response.status_code == 302
    session = PaymentSession.objects.get(pk=session.pk)
    assert (session.status, session.payment_attempts_failed) == (Status.CREATED, 1)
    assert WebhookEvent.objects.get().event_type == "payment_intent.payment_failed"
    page = client.get(f"/checkout?session={session.pk}").content.decode()
    assert "Your payment was declined" in page and "Simulate successful payment" in page

    # and the retry that succeeds pays the session
    client.post(f"/checkout/{session.pk}/simulate", {"outcome": "success", "email": "buyer@example.com"})
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID


@pytest.mark.parametrize("email", ["", "not-an-email"])
def test_the_simulator_needs_a_valid_email_to_pay(client, make_session, email):
    session = make_session()

    response = client.post(f"/checkout/{session.pk}/simulate", {"outcome": "success", "email": email})

    assert response.status_code == 400
    assert "valid email" in response.content.decode()
    assert PaymentSession.objects.get(pk=session.pk).status == Status.CREATED
    assert not WebhookEvent.objects.exists()


def test_the_simulator_refuses_an_unknown_outcome(client, make_session):
    session = make_session(customer_email="buyer@example.com")

    response = client.post(f"/checkout/{session.pk}/simulate", {"outcome": "refund"})

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_the_simulator_is_refused_for_a_live_session(client, make_session):
    session = make_session(mode="live", customer_email="buyer@example.com")

    page = client.get(f"/checkout?session={session.pk}").content.decode()
    response = client.post(f"/checkout/{session.pk}/simulate", {"outcome": "success"})

    assert "Simulate successful payment" not in page
    assert "TEST MODE" not in page
    assert response.status_code == 403
    assert PaymentSession.objects.get(pk=session.pk).status == Status.CREATED
    assert not WebhookEvent.objects.exists()


def test_the_simulator_does_nothing_for_a_closed_session(client, make_session, deliver):
    session = make_session(customer_email="buyer@example.com")
    deliver(stripe_event(session))

    response = client.post(f"/checkout/{session.pk}/simulate", {"outcome": "failure"})

    assert response.status_code == 302
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID
    assert WebhookEvent.objects.count() == 1


def test_the_simulator_for_an_unknown_session_is_a_404(client):
    assert client.post("/checkout/not-a-uuid/simulate", {"outcome": "success"}).status_code == 404


# ---------------------------------------------------------------- manage.py send_test_webhook


@pytest.mark.integration
@pytest.mark.parametrize(("event", "status"), [
    ("payment_intent.succeeded", Status.PAID),
    ("payment_intent.canceled", Status.FAILED),
])
def test_send_test_webhook_signs_and_posts_an_event_to_a_running_server(live_server, make_session, event, status):
    # given a session and this service running on a loopback port
    session = make_session()
    out = io.StringIO()

    # when a merchant sends a test event with the command
    call_command("send_test_webhook", str(session.pk), "--event", event,
                 "--url", f"{live_server.url}/webhooks/stripe", stdout=out)

    # then the server accepted it, and the session moved
    assert out.getvalue().startswith("200 ")
    assert '"outcome": "processed"' in out.getvalue()
    assert PaymentSession.objects.get(pk=session.pk).status == status
    assert WebhookEvent.objects.get().event_type == event


@pytest.mark.integration
def test_send_test_webhook_reports_an_error_answer(live_server, make_session):
    session = make_session()

    with pytest.raises(CommandError, match="^404 "):
        call_command("send_test_webhook", str(session.pk), "--url", f"{live_server.url}/webhooks/nowhere",
                     stdout=io.StringIO())


def test_send_test_webhook_refuses_an_unknown_session():
    with pytest.raises(CommandError, match="no session"):
        call_command("send_test_webhook", "5f0c7a2e-2b83-4d8e-9d3a-8d6f0c7b1e22", stdout=io.StringIO())


def test_send_test_webhook_reports_a_server_that_is_not_there(make_session, unused_tcp_port):
    with pytest.raises(CommandError, match="could not reach"):
        call_command("send_test_webhook", str(make_session().pk), "--url",
                     f"http://127.0.0.1:{unused_tcp_port}/webhooks/stripe", stdout=io.StringIO())


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- who may set the customer's email


def test_the_checkout_sets_the_email_of_an_open_session_that_has_none_and_audits_it(make_session):
    from audit.models import AuditEvent
    from sessions_app.lifecycle import session_set_customer

    session = make_session()

    session_set_customer(session_id=session.pk, email="first@example.com")
    session_set_customer(session_id=session.pk, email="second@example.com")

    session.refresh_from_db()
    assert session.customer_email == "first@example.com"
    assert AuditEvent.objects.filter(action="session.customer_set", subject_id=str(session.pk)).count() == 1


def test_the_checkout_never_sets_the_email_of_a_session_past_its_expiry_or_closed(make_session, deliver):
    from freezegun import freeze_time

    from sessions_app.lifecycle import session_set_customer

    expired, paid = make_session(), make_session()
    deliver(stripe_event(paid))
    with freeze_time(expired.expires_at + timedelta(seconds=1)):
        session_set_customer(session_id=expired.pk, email="late@example.com")
    session_set_customer(session_id=paid.pk, email="late@example.com")

    expired.refresh_from_db()
    paid.refresh_from_db()
    assert paid.status == Status.PAID
    assert expired.customer_email == paid.customer_email == ""
