"""Web3 payments verified on an in-process chain (eth-tester): only the chain decides."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from keys_app.services import merchant_create
from sessions_app.crypto import services as crypto
from sessions_app.crypto.tasks import web3_poll
from sessions_app.models import PaymentSession, Status, Web3Charge, Web3Quote, Web3Transfer, WebhookEvent
from sessions_app.providers import web3_provider
from sessions_app.tests.web3_support import (
    NATIVE_ETH,
    configure_merchant,
    deploy_token,
    merchant_address,
    merchant_xpub,
    mine,
    send_eth,
    send_token,
    stablecoin,
)

PRICE_WEI = 10**16  # 30.00 EUR at 3000 EUR/ETH
OTHER_MNEMONIC = "test test test test test test test test test test test junk"


def _session(api, amount="30.00", currency="EUR") -> PaymentSession:
    response = api.post("/create_session", {"amount": amount, "currency": currency, "providers": ["web3"]},
                        format="json")
    assert response.status_code == 201, response.content
    return PaymentSession.objects.get(pk=response.json()["session_id"])


def _submit(anon, session, tx_hash):
    return anon.post(f"/session/{session.pk}/web3/tx", {"tx_hash": tx_hash}, format="json")


@pytest.fixture
def eth_merchant(merchant, eth_chain):
    configure_merchant(merchant, asset=NATIVE_ETH)
    return merchant


@pytest.fixture
def token_merchant(merchant, eth_chain):
    address = deploy_token(eth_chain, owner=eth_chain.eth.accounts[0])
    configure_merchant(merchant, asset=stablecoin(address))
    merchant.token_address = address
    return merchant


def test_a_session_gets_its_own_address_and_a_locked_quote(eth_merchant, api, eth_chain):
    first, second = _session(api), _session(api)

    detail = api.get(f"/sessions/{first.pk}").json()["web3"]

    assert detail["chain_id"] == eth_chain.eth.chain_id
    assert detail["address"] == merchant_address(0)
    assert api.get(f"/sessions/{second.pk}").json()["web3"]["address"] == merchant_address(1)
    assert detail["asset"] == NATIVE_ETH
    assert detail["amount"] == str(PRICE_WEI)
    quote = Web3Quote.objects.get(charge__session=first)
    assert quote.expires_at - quote.created_at == timedelta(minutes=15)


def test_an_eth_payment_pays_the_session(eth_merchant, api, anon, eth_chain):
    session = _session(api)
    tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    response = _submit(anon, session, tx)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == Status.PAID
    session.refresh_from_db()
    assert (session.status, session.provider, session.provider_reference) == (Status.PAID, "web3", tx)
    assert WebhookEvent.objects.get(session=session, provider="web3").event_type == "web3.paid"


def test_an_erc20_payment_pays_the_session(token_merchant, api, anon, eth_chain):
    session = _session(api)
    assert api.get(f"/sessions/{session.pk}").json()["web3"]["amount"] == str(30 * 10**18)
    tx = send_token(eth_chain, contract=token_merchant.token_address, sender=eth_chain.eth.accounts[0],
                    to=merchant_address(0), units=30 * 10**18)

    response = _submit(anon, session, tx)

    assert response.json()["status"] == Status.PAID
    transfer = Web3Transfer.objects.get(charge__session=session)
    assert (transfer.log_index, transfer.token) == (0, token_merchant.token_address)


def test_a_payment_to_another_address_does_not_pay(eth_merchant, api, anon, eth_chain):
    session = _session(api)
    tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=eth_chain.eth.accounts[2], wei=PRICE_WEI)

    response = _submit(anon, session, tx)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "tx_wrong_recipient"
    session.refresh_from_db()
    assert session.status == Status.CREATED
    assert AuditEvent.objects.filter(action="web3.tx_rejected", subject_id=str(session.pk)).exists()


def test_a_look_alike_transfer_from_a_fake_token_contract_does_not_pay(token_merchant, api, anon, eth_chain):
    session = _session(api)
    fake = deploy_token(eth_chain, owner=eth_chain.eth.accounts[3], symbol="EURC")
    tx = send_token(eth_chain, contract=fake, sender=eth_chain.eth.accounts[3], to=merchant_address(0),
                    units=30 * 10**18)

    response = _submit(anon, session, tx)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "tx_wrong_token"
    session.refresh_from_db()
    assert session.status == Status.CREATED
    assert not Web3Transfer.objects.exists()


def test_an_underpayment_stays_pending_is_recorded_and_a_top_up_pays(eth_merchant, api, anon, eth_chain):
    session = _session(api)
    payer = eth_chain.eth.accounts[1]

    short = _submit(anon, session, send_eth(eth_chain, sender=payer, to=merchant_address(0), wei=PRICE_WEI // 2))

    assert short.json()["status"] == Status.PENDING
    assert short.json()["transfers"][0]["note"] == "underpaid"
    assert AuditEvent.objects.filter(action="web3.underpaid", subject_id=str(session.pk)).count() == 1

    rest = _submit(anon, session, send_eth(eth_chain, sender=payer, to=merchant_address(0), wei=PRICE_WEI // 2))

    assert rest.json()["status"] == Status.PAID


def test_an_overpayment_pays_and_is_recorded(eth_merchant, api, anon, eth_chain):
    session = _session(api)

    response = _submit(anon, session, send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0),
                                               wei=PRICE_WEI * 2))

    assert response.json()["status"] == Status.PAID
    assert Web3Transfer.objects.get(charge__session=session).note == "overpaid"
    assert AuditEvent.objects.filter(action="web3.overpaid", subject_id=str(session.pk)).exists()


def test_a_payment_within_the_tolerance_pays(eth_merchant, api, anon, eth_chain, settings):
    settings.WEB3_AMOUNT_TOLERANCE = Decimal("0.01")
    session = _session(api)

    response = _submit(anon, session, send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0),
                                               wei=PRICE_WEI * 99 // 100))

    assert response.json()["status"] == Status.PAID


def test_two_merchants_never_share_an_xpub_so_never_an_address(merchant, other_merchant, api, eth_chain):
    # given a merchant receiving on an xpub, with a session at its first address
    configure_merchant(merchant, asset=NATIVE_ETH)
    first = _session(api)

    # when another merchant is configured with the same xpub, the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        configure_merchant(other_merchant, asset=NATIVE_ETH)
    # and no charge of another account can take the same address on the same chain
    with pytest.raises(IntegrityError), transaction.atomic():
        Web3Charge.objects.create(session=_session(api), account=other_merchant, chain_id=first.web3_charge.chain_id,
                                  address_index=0, address=first.web3_charge.address.lower(), asset=NATIVE_ETH)


def test_the_database_refuses_a_second_record_of_the_same_transfer(eth_merchant, api, anon, eth_chain):
    session = _session(api)
    _submit(anon, session, send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0),
                                    wei=PRICE_WEI))
    transfer = Web3Transfer.objects.get()
    other = Web3Charge.objects.get(session=_session(api))

    with pytest.raises(IntegrityError), transaction.atomic():
        Web3Transfer.objects.create(charge=other, chain_id=transfer.chain_id, tx_hash=transfer.tx_hash,
                                    log_index=transfer.log_index, amount=1, block_number=1, block_hash="0x",
                                    block_time=timezone.now())


def test_too_few_confirmations_keep_it_pending_until_the_poller_sees_enough(eth_merchant, api, anon, eth_chain,
                                                                            settings):
    settings.WEB3_MIN_CONFIRMATIONS = 3
    session = _session(api)
    tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    response = _submit(anon, session, tx)

    assert response.json()["status"] == Status.PENDING
    assert response.json()["transfers"][0]["confirmations"] == 1
    web3_poll()
    session.refresh_from_db()
    assert session.status == Status.PENDING

    mine(eth_chain, 2)
    web3_poll()

    session.refresh_from_db()
    assert session.status == Status.PAID


def test_a_late_payment_inside_the_grace_window_pays_and_is_recorded(eth_merchant, api, anon, eth_chain):
    session = _session(api)
    Web3Quote.objects.filter(charge__session=session).update(expires_at=timezone.now() - timedelta(minutes=1))

    response = _submit(anon, session, send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0),
                                               wei=PRICE_WEI))

    assert response.json()["status"] == Status.PAID
    assert Web3Transfer.objects.get(charge__session=session).note == "late"
    assert AuditEvent.objects.filter(action="web3.late", subject_id=str(session.pk)).exists()


def test_a_payment_after_the_grace_window_does_not_pay_and_is_recorded(eth_merchant, api, anon, eth_chain):
    session = _session(api)
    Web3Quote.objects.filter(charge__session=session).update(created_at=timezone.now() - timedelta(hours=2),
                                                             expires_at=timezone.now() - timedelta(hours=1))

    response = _submit(anon, session, send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0),
                                               wei=PRICE_WEI))

    assert response.json()["status"] == Status.PENDING
    assert Web3Transfer.objects.get(charge__session=session).note == "outside_quote"


def test_an_expired_quote_is_shown_by_reads_and_replaced_only_by_the_pay_action(eth_merchant, api, client,
                                                                                 eth_chain, settings):
    # given a session whose crypto price expired, at a new rate
    session = _session(api)
    Web3Quote.objects.filter(charge__session=session).update(expires_at=timezone.now() - timedelta(seconds=1))
    settings.WEB3_FIXED_RATES = {("ETH", "EUR"): Decimal("1500.00")}

    # when the merchant reads it and the customer opens the page, nothing is written
    detail = api.get(f"/sessions/{session.pk}").json()["web3"]
    page = client.get(f"/checkout?session={session.pk}").content.decode()
    assert (detail["amount"], detail["quote_expired"]) == (str(PRICE_WEI), True)
    assert 'data-testid="web3-new-price"' in page and 'data-testid="pay-web3"' not in page
    assert Web3Quote.objects.filter(charge__session=session).count() == 1

    # when the customer asks for a new price (the pay action), the quote is replaced once
    response = client.post(f"/checkout/{session.pk}/pay/web3")
    client.post(f"/checkout/{session.pk}/pay/web3")

    assert response.status_code == 200
    assert 'data-testid="pay-web3"' in response.content.decode()
    assert Web3Quote.objects.filter(charge__session=session).count() == 2
    assert api.get(f"/sessions/{session.pk}").json()["web3"]["amount"] == str(2 * PRICE_WEI)


def test_a_node_on_another_chain_is_not_trusted(eth_merchant, api, anon, eth_chain, settings):
    # given a test session made for chain 5, while the node serves another chain
    settings.WEB3_TEST_CHAIN_ID = 5
    session = _session(api)
    tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    response = _submit(anon, session, tx)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "chain_unavailable"
    assert not Web3Transfer.objects.exists()


def test_a_transaction_not_yet_mined_is_accepted_for_later(eth_merchant, api, anon, eth_chain):
    session = _session(api)

    response = _submit(anon, session, "0x" + "ab" * 32)

    assert response.status_code == 202
    assert response.json()["found"] is False


@pytest.mark.parametrize("tx_hash", ["0x1234", "not-hex", "0x" + "zz" * 32])
def test_a_malformed_tx_hash_is_a_400(eth_merchant, api, anon, eth_chain, tx_hash):
    session = _session(api)

    response = _submit(anon, session, tx_hash)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "tx_hash_invalid"


def test_a_signed_address_hint_triggers_verification_from_the_chain(eth_merchant, api, client, eth_chain):
    session = _session(api)
    send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)
    body = json.dumps({"chain_id": eth_chain.eth.chain_id, "address": merchant_address(0)})

    response = client.post("/webhooks/web3", body, content_type="application/json",
                           HTTP_WEB3_SIGNATURE=web3_provider.sign(body))

    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.status == Status.PAID


def test_an_unsigned_or_forged_hint_is_refused(eth_merchant, api, client, eth_chain):
    _session(api)
    body = json.dumps({"chain_id": eth_chain.eth.chain_id, "address": merchant_address(0)})

    unsigned = client.post("/webhooks/web3", body, content_type="application/json")
    forged = client.post("/webhooks/web3", body, content_type="application/json",
                         HTTP_WEB3_SIGNATURE=web3_provider.sign(body, secret="not-the-secret"))

    assert unsigned.status_code == 400 and unsigned.json()["error"]["code"] == "signature_missing"
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "signature_invalid"


def test_a_hint_claiming_a_payment_that_is_not_on_chain_pays_nothing(eth_merchant, api, client, eth_chain):
    session = _session(api)
    body = json.dumps({"chain_id": eth_chain.eth.chain_id, "address": merchant_address(0),
                       "tx_hash": "0x" + "cd" * 32})

    response = client.post("/webhooks/web3", body, content_type="application/json",
                           HTTP_WEB3_SIGNATURE=web3_provider.sign(body))

    assert response.status_code == 200
    session.refresh_from_db()
    assert session.status == Status.CREATED


def test_the_poller_finds_a_token_payment_nobody_told_us_about(token_merchant, api, eth_chain):
    session = _session(api)
    send_token(eth_chain, contract=token_merchant.token_address, sender=eth_chain.eth.accounts[0],
               to=merchant_address(0), units=30 * 10**18)

    web3_poll()

    session.refresh_from_db()
    assert session.status == Status.PAID


def test_a_missing_rate_is_an_error_never_a_guess(eth_merchant, api, settings):
    settings.WEB3_FIXED_RATES = {}

    response = api.post("/create_session", {"amount": "30.00", "providers": ["web3"]}, format="json")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "web3_rate_unavailable"
    assert not PaymentSession.objects.exists()


def test_a_stablecoin_is_priced_one_to_one_in_its_own_currency_only(token_merchant, api):
    assert _session(api, amount="12.34").web3_charge.quotes.get().amount == Decimal("12.34") * 10**18

    response = api.post("/create_session", {"amount": "12.34", "currency": "USD", "providers": ["web3"]},
                        format="json")

    assert response.json()["error"]["code"] == "web3_rate_unavailable"


def test_the_checkout_page_shows_address_amount_qr_and_wallet_button(eth_merchant, api, client):
    session = _session(api)

    page = client.get(f"/checkout?session={session.pk}").text

    assert merchant_address(0) in page
    assert "0.01 ETH" in page
    assert "<svg" in page and "Payment QR code" in page
    assert "Pay with wallet" in page
    assert "sessions_app/checkout.js" in page
    assert "<script>" not in page


def test_eip681_uris_name_the_chain_the_address_and_the_amount(eth_merchant, token_merchant, api, eth_chain):
    charge = _session(api).web3_charge
    uri = crypto.eip681_uri(charge=charge, amount=5)
    assert uri == f"ethereum:{charge.asset['address']}@{eth_chain.eth.chain_id}/transfer?address={charge.address}&uint256=5"
    charge.asset = NATIVE_ETH
    assert crypto.eip681_uri(charge=charge, amount=5) == f"ethereum:{charge.address}@{eth_chain.eth.chain_id}?value=5"


def test_each_merchant_allocates_address_indexes_independently(eth_merchant, other_merchant, api):
    configure_merchant(other_merchant, asset=NATIVE_ETH, xpub=merchant_xpub(OTHER_MNEMONIC))
    _session(api)
    _session(api)
    from rest_framework.test import APIClient
    other_api = APIClient()
    other_api.credentials(HTTP_X_API_KEY=other_merchant.plaintext_key)
    _session(other_api)

    assert sorted(Web3Charge.objects.filter(account=eth_merchant).values_list("address_index", flat=True)) == [0, 1]
    assert list(Web3Charge.objects.filter(account=other_merchant).values_list("address_index", flat=True)) == [0]


def test_a_merchant_without_web3_setup_cannot_offer_it(merchant, api):
    merchant_create(name="x", email="x@example.test")
    merchant.enabled_providers = ["stripe", "web3"]
    merchant.save(update_fields=["enabled_providers"])

    response = api.post("/create_session", {"amount": "30.00", "providers": ["web3"]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "web3_not_configured"


def test_the_poller_runs_on_celery_beat_and_tolerates_a_missing_node(db, settings):
    from payments_site.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["web3-poll-open-sessions"]
    assert entry["task"] in app.tasks
    settings.WEB3_TEST_PROVIDER_URL = ""

    # with no open web3 session the node is not even asked; with one, a missing node decides nothing
    assert web3_poll() == {"charges": 0, "rechecked": 0, "found": 0}


def test_without_a_node_an_open_session_stays_open_and_the_poller_does_not_fail(eth_merchant, api, settings):
    session = _session(api)
    from sessions_app.crypto.chain import use_web3

    settings.WEB3_TEST_PROVIDER_URL = "http://127.0.0.1:9"
    with use_web3(None):
        assert web3_poll() is None

    session.refresh_from_db()
    assert session.status == Status.CREATED


def test_a_hint_for_an_address_we_do_not_watch_is_unmatched(eth_merchant, api, client, eth_chain):
    body = json.dumps({"chain_id": eth_chain.eth.chain_id, "address": eth_chain.eth.accounts[7]})

    response = client.post("/webhooks/web3", body, content_type="application/json",
                           HTTP_WEB3_SIGNATURE=web3_provider.sign(body))

    assert response.status_code == 200
    assert response.json()["outcome"] == "unmatched"


def test_a_transfer_after_the_session_expired_is_found_and_kept_as_a_late_payment(token_merchant, api, eth_chain):
    # given a session that expired before its customer paid
    session = _session(api)
    assert api.post(f"/sessions/{session.pk}/expire").status_code == 200

    # when the transfer lands and the poller runs
    send_token(eth_chain, contract=token_merchant.token_address, sender=eth_chain.eth.accounts[0],
               to=merchant_address(0), units=30 * 10**18)
    web3_poll()

    # then the session stays failed and the payment is kept as a late payment
    session.refresh_from_db()
    assert session.status == Status.FAILED
    assert session.late_payments.count() == 1
    assert session.late_payments.get().provider == "web3"


# ---------------------------------------------------------------- the receipt address sent along with a tx


def _submit_with_email(anon, session, tx_hash, email="buyer@example.com"):
    return anon.post(f"/session/{session.pk}/web3/tx", {"tx_hash": tx_hash, "email": email}, format="json")


def test_the_email_sent_with_a_paying_transaction_is_stored_before_the_session_is_paid(eth_merchant, api, anon,
                                                                                       eth_chain):
    session = _session(api)
    tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=merchant_address(0), wei=PRICE_WEI)

    response = _submit_with_email(anon, session, tx)

    assert response.json()["status"] == Status.PAID
    session.refresh_from_db()
    assert session.customer_email == "buyer@example.com"
    # set while the session was still open: the paid transition came after it
    set_at = AuditEvent.objects.get(action="session.customer_set", subject_id=str(session.pk)).seq
    paid_at = AuditEvent.objects.get(action="session.paid", subject_id=str(session.pk)).seq
    assert set_at < paid_at


@pytest.mark.parametrize("case", ["not mined", "another recipient", "malformed"])
def test_an_email_sent_with_a_transaction_that_does_not_verify_is_not_stored(eth_merchant, api, anon, eth_chain, case):
    session = _session(api)
    if case == "another recipient":
        tx = send_eth(eth_chain, sender=eth_chain.eth.accounts[1], to=eth_chain.eth.accounts[2], wei=PRICE_WEI)
    else:
        tx = "0x" + "ab" * 32 if case == "not mined" else "0x1234"

    response = _submit_with_email(anon, session, tx, email="attacker@example.com")

    assert response.status_code in (202, 400, 422)
    session.refresh_from_db()
    assert session.customer_email == ""
