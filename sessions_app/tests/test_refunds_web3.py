"""Crypto refunds on anvil: the customer claims an address, the merchant pays out from its own
wallet, and only a confirmed transfer of the right asset and amount to that address counts."""

from __future__ import annotations

import re

import pytest

from invoices_app.models import CreditNote
from sessions_app.models import PaymentSession, Refund
from sessions_app.refunds.web3 import claim_token
from sessions_app.tests.web3_support import NATIVE_ETH, configure_merchant, send_eth

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PRICE_WEI = 10**16  # 30.00 EUR at 3000 EUR/ETH


@pytest.fixture
def paid_in_eth(anvil_node, merchant, api, anon):
    configure_merchant(merchant, asset=NATIVE_ETH)
    # Test mode mails customers only at addresses the merchant lists.
    merchant.test_email_recipients = ["buyer@example.test"]
    merchant.save(update_fields=["test_email_recipients"])
    created = api.post("/create_session", {"amount": "30.00", "providers": ["web3"],
                                           "customer_email": "buyer@example.test"}, format="json").json()
    w3 = anvil_node.w3
    tx = send_eth(w3, sender=w3.eth.accounts[1], to=created["web3"]["address"], wei=int(created["web3"]["amount"]))
    assert anon.post(f"/session/{created['session_id']}/web3/tx", {"tx_hash": tx}, format="json").status_code == 200
    return PaymentSession.objects.get(pk=created["session_id"]), w3


def test_claim_payout_and_confirmation_and_a_payout_elsewhere_does_not_count(
        paid_in_eth, api, client, mailoutbox, django_capture_on_commit_callbacks):
    session, w3 = paid_in_eth
    assert session.status == "paid"
    merchant_wallet, customer_wallet, stranger = w3.eth.accounts[0], w3.eth.accounts[2], w3.eth.accounts[3]

    # when the merchant refunds half
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(f"/sessions/{session.pk}/refunds", {"amount": "15.00", "reason": "requested_by_customer"},
                           format="json").json()

    # then it is pending, and the customer is emailed a claim link
    assert (started["status"], started["provider"]) == ("pending", "web3")
    [mail] = [m for m in mailoutbox if "where should it go" in m.subject]
    claim_path = re.search(r"/refund-claim/\S+", mail.body).group(0)
    # a payout before the customer named an address is refused
    early = api.post(f"/refunds/{started['id']}/web3_payout", {"tx_hash": "0x" + "ab" * 32}, format="json")
    assert (early.status_code, early.json()["error"]["code"]) == (409, "claim_missing")

    # when the customer names a receiving address on the claim page
    page = client.get(claim_path)
    assert page.status_code == 200 and "Receiving address" in page.content.decode()
    assert client.post(claim_path, {"address": "0x1234"}).status_code == 400
    claimed = client.post(claim_path, {"address": customer_wallet.lower()})
    assert claimed.status_code == 200 and customer_wallet in claimed.content.decode()
    assert client.post(claim_path, {"address": stranger}).status_code == 409

    # and the merchant pays out to the wrong address: it does not count
    wrong = send_eth(w3, sender=merchant_wallet, to=stranger, wei=PRICE_WEI // 2)
    response = api.post(f"/refunds/{started['id']}/web3_payout", {"tx_hash": wrong}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "payout_wrong_recipient")
    # nor does too little to the right one
    short = send_eth(w3, sender=merchant_wallet, to=customer_wallet, wei=PRICE_WEI // 2 - 1)
    response = api.post(f"/refunds/{started['id']}/web3_payout", {"tx_hash": short}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "payout_too_small")
    assert Refund.objects.get(pk=started["id"]).status == "pending"

    # when the right payout is submitted
    right = send_eth(w3, sender=merchant_wallet, to=customer_wallet, wei=PRICE_WEI // 2)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/refunds/{started['id']}/web3_payout", {"tx_hash": right}, format="json")

    # then the chain's confirmation succeeds the refund, with its credit note
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["provider_reference"], body["payout"]["amount"]) == (
        "succeeded", right.lower(), str(PRICE_WEI // 2))
    session.refresh_from_db()
    assert (session.refund_status, str(session.amount_refunded)) == ("partially_refunded", "15.000")
    assert CreditNote.objects.filter(refund_id=started["id"]).count() == 1
    # one payout pays one refund
    second = api.post(f"/sessions/{session.pk}/refunds", {"amount": "1.00", "reason": "other"},
                      format="json").json()
    client.post(f"/refund-claim/{claim_token(Refund.objects.get(pk=second['id']))}", {"address": customer_wallet})
    reused = api.post(f"/refunds/{second['id']}/web3_payout", {"tx_hash": right}, format="json")
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "payout_already_used")
