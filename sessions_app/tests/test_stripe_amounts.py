"""Stripe's minor units: ISO 4217 exponents for the service, Stripe's own rules for Stripe.

One test per special currency of https://docs.stripe.com/currencies#special-cases, plus the
zero- and three-decimal groups; the end-to-end ones go through the checkout and a signed webhook.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core import currencies
from sessions_app.models import PaymentSession, Status
from sessions_app.providers import stripe_amounts, stripe_provider
from sessions_app.providers.stripe_amounts import AmountNotChargeable, from_stripe, to_stripe


def test_the_service_takes_its_exponents_from_babel_not_from_a_table_of_its_own():
    from babel.numbers import get_currency_precision

    assert currencies.EXPONENTS == {code: get_currency_precision(code) for code in currencies.ACCEPTED}
    assert (currencies.exponent("EUR"), currencies.exponent("JPY"), currencies.exponent("KWD")) == (2, 0, 3)
    assert currencies.exponent("ISK") == 0


def test_isk_is_sent_with_two_decimals_and_in_whole_kronur_only():
    # ISO 4217 gives ISK no decimals; Stripe's API still takes it with two, divisible by 100
    assert to_stripe(Decimal("1500"), "ISK") == 150000
    assert from_stripe(150000, "ISK") == Decimal("1500")
    with pytest.raises(AmountNotChargeable):
        to_stripe(Decimal("1500.50"), "ISK")


def test_ugx_is_sent_with_two_decimals_and_in_whole_shillings_only():
    assert to_stripe(Decimal("5"), "UGX") == 500
    assert to_stripe(Decimal("60000"), "UGX") == 6000000
    with pytest.raises(AmountNotChargeable):
        to_stripe(Decimal("5.5"), "UGX")


def test_huf_is_charged_with_two_decimals():
    # Stripe's HUF rule concerns payouts; charges take two decimals (the service's HUF has none)
    assert to_stripe(Decimal("1000"), "HUF") == 100000
    assert from_stripe(100000, "HUF") == Decimal("1000")


def test_twd_is_charged_with_two_decimals():
    assert to_stripe(Decimal("800.45"), "TWD") == 80045
    assert from_stripe(80045, "TWD") == Decimal("800.45")


@pytest.mark.parametrize("code", sorted(stripe_amounts.ZERO_DECIMAL & currencies.ACCEPTED))
def test_zero_decimal_currencies_are_sent_as_they_are(code):
    assert to_stripe(Decimal("500"), code) == 500


@pytest.mark.parametrize("code", sorted(stripe_amounts.THREE_DECIMAL))
def test_three_decimal_currencies_need_a_last_digit_of_zero(code):
    assert to_stripe(Decimal("5.120"), code) == 5120
    with pytest.raises(AmountNotChargeable):
        to_stripe(Decimal("5.125"), code)


@pytest.fixture
def fake_stripe(monkeypatch, settings):
    settings.STRIPE_TEST_SECRET_KEY = "sk_test_" + "x" * 24
    settings.STRIPE_CHECKOUT_FLOW = "checkout"
    calls = []

    class Sessions:
        def create(self, *, params, options):
            calls.append(params)
            return {"id": "cs_test_isk", "url": "https://checkout.stripe.test/c/pay/cs_test_isk"}

    fake = type("Client", (), {"v1": type("V1", (), {"checkout": type("C", (), {"sessions": Sessions()})()})()})()
    monkeypatch.setattr(stripe_provider, "client", lambda mode: fake)
    return calls


def test_an_isk_session_is_charged_its_full_price_and_paid_by_stripes_event(api, client, fake_stripe):
    # given a session of 1500 ISK
    created = api.post("/create_session", {"amount": "1500", "currency": "ISK",
                                           "customer_email": "buyer@example.test"}, format="json")
    session = PaymentSession.objects.get(pk=created.json()["session_id"])

    # when the customer pays by card, Stripe is asked for 150000 (1500.00 ISK), not 1500 (15 ISK)
    assert client.post(f"/checkout/{session.pk}/pay/stripe").status_code == 302
    assert fake_stripe[0]["line_items"][0]["price_data"]["unit_amount"] == 150000

    # and Stripe's event for 150000 pays it
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                       amount=session.amount, currency="ISK")
    assert event["data"]["object"]["amount_received"] == 150000
    body = json.dumps(event)
    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.status == Status.PAID


def test_an_isk_event_for_one_hundredth_of_the_price_does_not_pay(api, client):
    created = api.post("/create_session", {"amount": "1500", "currency": "ISK"}, format="json")
    session = PaymentSession.objects.get(pk=created.json()["session_id"])
    event = stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                       amount=session.amount, currency="ISK")
    event["data"]["object"]["amount"] = event["data"]["object"]["amount_received"] = 1500  # 15 ISK
    body = json.dumps(event)

    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))

    assert response.json()["outcome"] == "rejected"
    session.refresh_from_db()
    assert session.status == Status.CREATED


def test_a_kwd_amount_stripe_cannot_charge_is_a_clear_4xx(api, client, fake_stripe):
    created = api.post("/create_session", {"amount": "5.125", "currency": "KWD",
                                           "customer_email": "buyer@example.test"}, format="json")
    session_id = created.json()["session_id"]

    response = client.post(f"/checkout/{session_id}/pay/stripe", HTTP_ACCEPT="application/json")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "amount_not_chargeable"
    assert fake_stripe == []


@pytest.mark.parametrize(("currency", "stripe_minor", "ours"), [("ISK", 150000, 1500), ("EUR", 2050, 2050),
                                                                ("JPY", 500, 500), ("HUF", 150000, 1500)])
def test_refunds_reported_by_stripe_are_read_in_the_services_minor_units(currency, stripe_minor, ours):
    # A charge with its refunds listed, and one without the list (only the charge's total).
    listed = {"object": "charge", "id": "ch_1", "currency": currency.lower(),
              "refunds": {"data": [{"id": "re_1", "object": "refund", "amount": stripe_minor, "status": "succeeded",
                                    "currency": currency.lower(), "charge": "ch_1", "metadata": {}}]}}
    total_only = {"object": "charge", "id": "ch_1", "currency": currency.lower(), "amount_refunded": stripe_minor}

    assert stripe_provider.refund_reports(listed)[0]["amount_minor"] == ours
    assert stripe_provider.refund_reports(total_only)[0]["charge_total_minor"] == ours

