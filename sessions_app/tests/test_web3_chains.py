"""The Web3 scenarios the service must get right, each on eth-tester and on anvil (a real node)."""

from __future__ import annotations

import time

import pytest
import requests
from rest_framework.test import APIClient

from audit.models import AuditEvent
from sessions_app.crypto.tasks import web3_poll
from sessions_app.models import PaymentSession, Status, Web3Transfer
from sessions_app.tests.web3_support import (
    NATIVE_ETH,
    configure_merchant,
    deploy_token,
    merchant_address,
    mine,
    send_eth,
    send_token,
    stablecoin,
)

PRICE_WEI = 10**16  # 30.00 EUR at 3000 EUR/ETH
TOKEN_UNITS = 30 * 10**18  # 30.00 EUR in a stablecoin with 18 decimals


def _session(api) -> PaymentSession:
    response = api.post("/create_session", {"amount": "30.00", "currency": "EUR", "providers": ["web3"]},
                        format="json")
    assert response.status_code == 201, response.content
    return PaymentSession.objects.get(pk=response.json()["session_id"])


def _submit(anon, session, tx_hash):
    return anon.post(f"/session/{session.pk}/web3/tx", {"tx_hash": tx_hash}, format="json")


def _api_for(account) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=account.plaintext_key)
    return client


def test_an_eth_payment_pays(chain, merchant, api, anon):
    configure_merchant(merchant, asset=NATIVE_ETH)
    session = _session(api)

    response = _submit(anon, session, send_eth(chain, sender=chain.eth.accounts[1], to=merchant_address(0),
                                               wei=PRICE_WEI))

    assert response.json()["status"] == Status.PAID


def test_an_erc20_payment_pays(chain, merchant, api, anon):
    token = deploy_token(chain, owner=chain.eth.accounts[0])
    configure_merchant(merchant, asset=stablecoin(token))
    session = _session(api)

    response = _submit(anon, session, send_token(chain, contract=token, sender=chain.eth.accounts[0],
                                                 to=merchant_address(0), units=TOKEN_UNITS))

    assert response.json()["status"] == Status.PAID


def test_a_wrong_recipient_does_not_pay(chain, merchant, api, anon):
    configure_merchant(merchant, asset=NATIVE_ETH)
    session = _session(api)

    response = _submit(anon, session, send_eth(chain, sender=chain.eth.accounts[1], to=chain.eth.accounts[2],
                                               wei=PRICE_WEI))

    assert response.json()["error"]["code"] == "tx_wrong_recipient"
    session.refresh_from_db()
    assert session.status == Status.CREATED


def test_a_fake_token_with_a_look_alike_transfer_does_not_pay(chain, merchant, api, anon):
    token = deploy_token(chain, owner=chain.eth.accounts[0])
    fake = deploy_token(chain, owner=chain.eth.accounts[4], symbol="EURC")
    configure_merchant(merchant, asset=stablecoin(token))
    session = _session(api)

    response = _submit(anon, session, send_token(chain, contract=fake, sender=chain.eth.accounts[4],
                                                 to=merchant_address(0), units=TOKEN_UNITS))

    assert response.json()["error"]["code"] == "tx_wrong_token"
    web3_poll()
    session.refresh_from_db()
    assert session.status == Status.CREATED


def test_an_underpayment_stays_pending(chain, merchant, api, anon):
    configure_merchant(merchant, asset=NATIVE_ETH)
    session = _session(api)

    response = _submit(anon, session, send_eth(chain, sender=chain.eth.accounts[1], to=merchant_address(0),
                                               wei=PRICE_WEI - 1))

    assert response.json()["status"] == Status.PENDING
    assert Web3Transfer.objects.get(charge__session=session).note == "underpaid"


def test_one_tx_hash_submitted_for_two_sessions_pays_one(chain, merchant, api, anon):
    # Two sessions never share an address (one per chain and address, across accounts), so a
    # transaction to the first session's address cannot pay the second.
    configure_merchant(merchant, asset=NATIVE_ETH)
    first, second = _session(api), _session(api)
    tx = send_eth(chain, sender=chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    responses = [_submit(anon, first, tx), _submit(anon, second, tx)]

    assert responses[0].json()["status"] == Status.PAID
    assert responses[1].json()["error"]["code"] == "tx_wrong_recipient"
    second.refresh_from_db()
    assert second.status == Status.CREATED


def test_too_few_confirmations_wait(chain, merchant, api, anon, settings):
    settings.WEB3_MIN_CONFIRMATIONS = 4
    configure_merchant(merchant, asset=NATIVE_ETH)
    session = _session(api)
    tx = send_eth(chain, sender=chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    assert _submit(anon, session, tx).json()["status"] == Status.PENDING
    mine(chain, 2)
    assert _submit(anon, session, tx).json()["status"] == Status.PENDING
    mine(chain, 1)
    assert _submit(anon, session, tx).json()["status"] == Status.PAID


def test_a_reorg_that_removes_the_payment_before_confirmation_does_not_pay(anvil_node, merchant, api, anon,
                                                                          settings):
    settings.WEB3_MIN_CONFIRMATIONS = 3
    configure_merchant(merchant, asset=NATIVE_ETH)
    session = _session(api)
    w3 = anvil_node.w3
    tx = send_eth(w3, sender=w3.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)
    assert _submit(anon, session, tx).json()["status"] == Status.PENDING

    # when the block holding it is replaced, and the chain grows past the confirmation depth
    anvil_node.reorg(1)
    mine(w3, 3)
    web3_poll()

    # then the payment is gone: recorded as dropped, and the session is not paid
    session.refresh_from_db()
    assert session.status == Status.PENDING
    assert Web3Transfer.objects.get(charge__session=session).status == Web3Transfer.Status.DROPPED
    assert AuditEvent.objects.filter(action="web3.transfer_dropped", subject_id=str(session.pk)).exists()

    # and a real payment afterwards still pays
    paid = _submit(anon, session, send_eth(w3, sender=w3.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI))
    mine(w3, 2)
    web3_poll()
    session.refresh_from_db()
    assert (paid.status_code, session.status) == (200, Status.PAID)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_end_to_end_a_wallet_payment_on_anvil_pays_the_session(anvil_node, merchant, api, live_server, settings):
    # given a merchant that takes ETH and a session a customer opens in the browser
    settings.PUBLIC_BASE_URL = live_server.url
    configure_merchant(merchant, asset=NATIVE_ETH)
    created = api.post("/create_session", {"amount": "30.00", "providers": ["web3"]}, format="json").json()
    web3 = created["web3"]
    page = requests.get(created["checkout_url"], timeout=10)
    assert web3["address"] in page.text

    # when the wallet sends the quoted amount to the quoted address, and the page submits the hash
    w3 = anvil_node.w3
    tx = send_eth(w3, sender=w3.eth.accounts[1], to=web3["address"], wei=int(web3["amount"]))
    submitted = requests.post(f"{live_server.url}/session/{created['session_id']}/web3/tx", json={"tx_hash": tx},
                              timeout=10)

    # then the public status says paid
    assert submitted.status_code == 200, submitted.text
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        status = requests.get(f"{live_server.url}/session/{created['session_id']}/status", timeout=10).json()["status"]
        if status == Status.PAID:
            break
        time.sleep(0.1)
    assert status == Status.PAID
