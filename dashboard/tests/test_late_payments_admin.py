"""The dashboard's "paid after expiry" filter and its one action, "Fulfil anyway"."""

import json
from decimal import Decimal

import pytest

from invoices_app.models import Invoice
from keys_app.models import Mode
from sessions_app.models import LatePayment, PaymentSession, Status
from sessions_app.providers import stripe_provider
from sessions_app.services import session_create, session_expire

SESSIONS = "/admin/sessions_app/paymentsession/"

pytestmark = pytest.mark.django_db(transaction=True)


def _late_paid(client, account) -> PaymentSession:
    session = session_create(account=account, api_key=account.api_key, amount=Decimal("25.00"), mode=Mode.TEST,
                             customer_email="buyer@example.com")
    session_expire(session_id=session.pk, actor="test")
    body = json.dumps(stripe_provider.test_event(session_id=str(session.pk), event_type="payment_intent.succeeded",
                                                 amount=session.amount, currency=session.currency))
    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert response.json()["outcome"] == "late"
    return session


def test_the_merchant_finds_late_payments_and_fulfils_one_anyway(merchant_client, merchant, other_merchant, client):
    # given a late-paid session, an ordinary expired one, and another merchant's late-paid one
    late = _late_paid(client, merchant)
    expired = session_create(account=merchant, api_key=merchant.api_key, amount=Decimal("5.00"))
    session_expire(session_id=expired.pk, actor="test")
    theirs = _late_paid(client, other_merchant)

    # when the merchant filters by "paid after expiry"
    page = merchant_client.get(SESSIONS, {"late": "undecided"}).content.decode()

    # then only its own late-paid session is listed
    assert str(late.pk) in page
    assert str(expired.pk) not in page and str(theirs.pk) not in page

    # and the detail page shows the payment and what to do
    detail = merchant_client.get(f"{SESSIONS}{late.pk}/change/").content.decode()
    assert 'data-testid="late-payment"' in detail and "Fulfil anyway" in detail

    # when it runs "Fulfil anyway" on all three (another merchant's id is not in its queryset)
    response = merchant_client.post(SESSIONS, {"action": "fulfil_anyway",
                                               "_selected_action": [late.pk, expired.pk, theirs.pk]}, follow=True)

    # then its late-paid session is delivered once, and nothing else changes
    assert "1 to be delivered" in response.content.decode()
    late = PaymentSession.objects.get(pk=late.pk)
    assert late.status == Status.FAILED and late.fulfil_anyway_by.startswith("admin:")
    assert Invoice.objects.filter(session=late).count() == 1
    assert PaymentSession.objects.get(pk=theirs.pk).fulfil_anyway_at is None
    assert not Invoice.objects.filter(session_id__in=[expired.pk, theirs.pk]).exists()
    assert "Delivered anyway" in merchant_client.get(f"{SESSIONS}{late.pk}/change/").content.decode()
    assert merchant_client.get(SESSIONS, {"late": "undecided"}).content.decode().count(str(late.pk)) == 0
    assert LatePayment.objects.filter(session=late).count() == 1
