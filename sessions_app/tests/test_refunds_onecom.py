"""One.com refunds: pending until the signed refund.succeeded or refund.failed callback."""

from __future__ import annotations

import pytest

from events_app.models import Event
from sessions_app.models import Refund, WebhookEvent
from sessions_app.providers import onecom_provider
from sessions_app.tests.test_onecom import _deliver, _event, _session

pytestmark = pytest.mark.django_db


@pytest.fixture
def onecom_paid(merchant, api, client, settings):
    # A configured One.com: its refunds are decided by its callbacks, not by the simulator.
    settings.ONECOM_TEST_CHECKOUT_URL = "https://checkout.onecom.test/pay"
    merchant.enabled_providers = ["stripe", "onecom"]
    merchant.save(update_fields=["enabled_providers"])
    session = _session(api)
    assert _deliver(client, _event(session, "payment.succeeded", payment_id="pay_1")).status_code == 200
    return session


def _callback(client, session, refund_id: str, *, succeeded: bool, amount: str, msg_id: str | None = None,
              reference: str | None = None):
    from decimal import Decimal

    payload = onecom_provider.test_refund_event(session_id=str(session.pk), refund_id=refund_id, succeeded=succeeded,
                                                amount=Decimal(amount), currency="EUR", refund_reference=reference)
    return _deliver(client, payload, msg_id=msg_id)


def test_a_one_com_refund_is_pending_until_its_signed_callback_succeeds_it(onecom_paid, api, client):
    session = onecom_paid
    started = api.post(f"/sessions/{session.pk}/refunds", {"amount": "50.00", "reason": "requested_by_customer"},
                       format="json").json()
    assert (started["status"], started["provider"]) == ("pending", "onecom")
    session.refresh_from_db()
    assert session.refund_status == "none"

    response = _callback(client, session, started["id"], succeeded=True, amount="50.00", msg_id="msg_refund_1",
                         reference="rfd_1")
    replay = _callback(client, session, started["id"], succeeded=True, amount="50.00", msg_id="msg_refund_1",
                       reference="rfd_1")

    assert (response.json()["outcome"], replay.json()["outcome"]) == ("processed", "duplicate")
    refund = Refund.objects.get(pk=started["id"])
    assert (refund.status, refund.provider_reference) == ("succeeded", "rfd_1")
    session.refresh_from_db()
    assert (session.refund_status, str(session.amount_refunded)) == ("partially_refunded", "50.000")
    assert list(Event.objects.filter(object_id=started["id"]).order_by("created_at")
                .values_list("type", flat=True)) == ["refund.created", "refund.succeeded"]
    assert WebhookEvent.objects.filter(provider="onecom", event_type="refund.succeeded").count() == 1


def test_a_failed_one_com_refund_frees_its_amount(onecom_paid, api, client):
    session = onecom_paid
    started = api.post(f"/sessions/{session.pk}/refunds", {"reason": "other"}, format="json").json()
    assert api.post(f"/sessions/{session.pk}/refunds", {"amount": "1.00", "reason": "other"},
                    format="json").json()["error"]["code"] == "refund_exceeds_available"

    assert _callback(client, session, started["id"], succeeded=False, amount="99.99").json()["outcome"] == "processed"

    refund = Refund.objects.get(pk=started["id"])
    assert (refund.status, refund.failure_reason) == ("failed", "card_closed")
    assert Event.objects.filter(object_id=started["id"], type="refund.failed").count() == 1
    assert api.post(f"/sessions/{session.pk}/refunds", {"amount": "1.00", "reason": "other"},
                    format="json").json()["status"] == "pending"


def test_an_unsigned_or_mis_signed_refund_callback_is_refused(onecom_paid, api, client):
    session = onecom_paid
    started = api.post(f"/sessions/{session.pk}/refunds", {"reason": "other"}, format="json").json()
    payload = onecom_provider.test_refund_event(session_id=str(session.pk), refund_id=started["id"], succeeded=True,
                                                amount=session.amount, currency="EUR")
    body = onecom_provider.dumps(payload)
    headers = onecom_provider.sign(body)
    headers["webhook-signature"] = "v1,AAAA" + headers["webhook-signature"][7:]

    response = client.post("/webhooks/onecom", body, content_type="application/json",
                           **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})

    assert response.status_code == 400
    assert Refund.objects.get(pk=started["id"]).status == "pending"


def test_a_pending_one_com_refund_can_be_canceled(onecom_paid, api):
    session = onecom_paid
    started = api.post(f"/sessions/{session.pk}/refunds", {"reason": "other"}, format="json").json()

    canceled = api.post(f"/refunds/{started['id']}/cancel")
    again = api.post(f"/refunds/{started['id']}/cancel")

    assert canceled.json()["status"] == "canceled"
    assert (again.status_code, again.json()["error"]["code"]) == (409, "refund_not_pending")
    assert api.post(f"/sessions/{session.pk}/refunds", {"reason": "other"}, format="json").status_code == 201
