"""Web3 payments: a charge per session, locked quotes, and verification from the chain only.

A transfer found on chain becomes a `Web3Transfer` (unique per chain, tx hash and log index, so
one transfer pays one session), and its meaning for the session becomes a `PaymentEvent` for
`payment_event_apply`, like any provider's webhook.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_utils import to_checksum_address
from web3.exceptions import TransactionNotFound

from audit.services import audit_record
from core import errors
from core.formatting import iso_utc
from keys_app.services import web3_address_index_take
from sessions_app.crypto import rates
from sessions_app.crypto.addresses import address_derive
from sessions_app.crypto.chain import ChainMismatch, ChainUnavailable, chain_id_for, checked_web3
from sessions_app.events import Action, PaymentEvent, WebhookResult
from sessions_app.lifecycle import payment_event_apply, session_set_customer
from sessions_app.models import (
    OPEN_STATUSES,
    PaymentSession,
    Web3Charge,
    Web3Quote,
    Web3Transfer,
)

logger = logging.getLogger(__name__)

NAME = "web3"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
# A quote counts for a transfer mined up to this long before the quote was made (node clocks drift).
CLOCK_SKEW = timedelta(minutes=5)


class TxRejected(Exception):
    """A transaction that cannot pay this session; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- charges and quotes


def _amount_for(*, session: PaymentSession, asset: dict[str, Any]) -> tuple[int, Decimal, str]:
    try:
        price, source = rates.asset_price(asset=asset, currency=session.currency)
    except rates.RateUnavailable as exc:
        raise errors.Unprocessable("web3_rate_unavailable", str(exc), field="providers") from None
    with localcontext() as ctx:
        ctx.prec = 80
        # Round up: the merchant never receives less than the session's amount at the quoted rate.
        units = (session.amount / price * Decimal(10) ** asset["decimals"]).to_integral_value(ROUND_CEILING)
    return int(units), price, source


def quote_create(*, charge: Web3Charge, session: PaymentSession) -> Web3Quote:
    amount, price, source = _amount_for(session=session, asset=charge.asset)
    now = timezone.now()
    quote = Web3Quote.objects.create(charge=charge, amount=amount, rate=price, rate_source=source, created_at=now,
                                     expires_at=now + timedelta(seconds=settings.WEB3_QUOTE_TTL_SECONDS))
    audit_record(action="web3.quoted", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor="system:web3",
                 data={"amount": str(amount), "rate": str(price), "rate_source": source,
                       "expires_at": quote.expires_at.isoformat()})
    return quote


@transaction.atomic
def charge_create(*, session: PaymentSession) -> Web3Charge:
    """A fresh receiving address and a first quote, made inside the session's creation."""
    account = session.account
    if not (account.web3_xpub and account.web3_asset):
        raise errors.DomainError("web3_not_configured", "Set web3_xpub and web3_asset on the account first (PATCH /account).",
                       field="providers")
    chain_id = chain_id_for(session.mode)
    if not chain_id:
        raise errors.DomainError("web3_not_configured",
                                 f"Crypto payments are not configured for {session.mode} mode "
                                 f"(WEB3_{session.mode.upper()}_CHAIN_ID).", field="providers")
    index = web3_address_index_take(account_id=account.pk)
    try:
        with transaction.atomic():
            charge = Web3Charge.objects.create(
                session=session, account=account, chain_id=chain_id, address_index=index,
                address=address_derive(xpub=account.web3_xpub, index=index), asset=account.web3_asset,
            )
    except IntegrityError:
        # The address already receives for another charge on this chain (web3_unique_chain_address):
        # another account holds the same xpub. Never share an address, and so never a payment.
        raise errors.Conflict("web3_address_taken", "This account's receiving address is already in use on this "
                              "chain by another account; set a different web3_xpub.", field="providers") from None
    quote_create(charge=charge, session=session)
    return charge


def quote_latest(*, charge: Web3Charge) -> Web3Quote | None:
    return charge.quotes.order_by("-created_at", "-id").first()


def quote_refresh(*, session: PaymentSession) -> Web3Quote | None:
    """The pay action: an expired quote is replaced while the session is open (reads never do)."""
    charge = Web3Charge.objects.filter(session=session).first()
    if charge is None:
        return None
    quote = quote_latest(charge=charge)
    if quote is None or quote.expires_at > timezone.now():
        return quote
    with transaction.atomic():
        # Lock the charge: two pay actions at expiry must not make two quotes.
        charge = Web3Charge.objects.select_for_update().select_related("session").get(pk=charge.pk)
        latest = charge.quotes.order_by("-created_at", "-id").first()
        if latest.expires_at > timezone.now() or charge.session.status not in OPEN_STATUSES:
            return latest
        return quote_create(charge=charge, session=charge.session)


def format_units(amount: int | Decimal, decimals: int) -> str:
    text = f"{Decimal(int(amount)).scaleb(-decimals):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def eip681_uri(*, charge: Web3Charge, amount: int) -> str:
    if charge.asset["type"] == "erc20":
        return (f"ethereum:{charge.asset['address']}@{charge.chain_id}/transfer"
                f"?address={charge.address}&uint256={amount}")
    return f"ethereum:{charge.address}@{charge.chain_id}?value={amount}"


def web3_public(*, session: PaymentSession) -> dict[str, Any] | None:
    """What the API and the checkout page show: where to pay and how much, until when. A read:
    an expired quote is shown as it is (quote_expired); the pay action replaces it."""
    charge = Web3Charge.objects.filter(session=session).first()
    if charge is None:
        return None
    quote = quote_latest(charge=charge)
    return {
        "chain_id": charge.chain_id,
        "address": charge.address,
        "asset": charge.asset,
        "amount": str(int(quote.amount)),
        "quote_expires_at": iso_utc(quote.expires_at),
        "quote_expired": quote.expires_at <= timezone.now(),
    }


# ---------------------------------------------------------------- verification


@dataclass
class Found:
    log_index: int
    amount: int
    sender: str
    token: str


@dataclass
class TxCheck:
    tx_hash: str
    transfers: list[Web3Transfer] = field(default_factory=list)
    result: WebhookResult | None = None


def hex_string(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value if str(value).startswith("0x") else "0x" + str(value)


def normalize_tx_hash(value: Any) -> str:
    text = str(value or "").strip().lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if len(text) != 66 or any(c not in "0123456789abcdef" for c in text[2:]):
        raise TxRejected("tx_hash_invalid", "tx_hash must be 32 bytes in hex, 0x-prefixed.")
    return text


def _find_transfers(w3, charge: Web3Charge, tx_hash: str, receipt) -> list[Found]:
    if receipt["status"] != 1:
        raise TxRejected("tx_failed", "The transaction reverted.")
    address = charge.address.lower()
    if charge.asset["type"] == "native":
        tx = w3.eth.get_transaction(tx_hash)
        if not tx["to"] or tx["to"].lower() != address:
            raise TxRejected("tx_wrong_recipient", "The transaction does not pay this session's address.")
        if not tx["value"]:
            raise TxRejected("tx_no_value", "The transaction sends no ether.")
        return [Found(log_index=-1, amount=int(tx["value"]), sender=tx["from"], token="")]
    token = charge.asset["address"].lower()
    found, look_alike = [], False
    for log in receipt["logs"]:
        topics = [hex_string(t) for t in log["topics"]]
        if len(topics) != 3 or topics[0].lower() != TRANSFER_TOPIC:
            continue
        recipient = "0x" + topics[2][-40:].lower()
        if recipient != address:
            continue
        # web3.py decodes Transfer logs from any contract: the emitter must be the configured token.
        if log["address"].lower() != token:
            look_alike = True
            continue
        amount = int.from_bytes(bytes(log["data"]), "big") if log["data"] else 0
        found.append(Found(log_index=int(log["logIndex"]), amount=amount,
                           sender=to_checksum_address("0x" + topics[1][-40:]), token=log["address"]))
    if not found:
        if look_alike:
            raise TxRejected("tx_wrong_token", "The Transfer was not emitted by the accepted token contract.")
        raise TxRejected("tx_wrong_recipient", "The transaction moves no accepted token to this session's address.")
    return found


def _audit_rejected(charge: Web3Charge, tx_hash: str, exc: TxRejected, actor: str) -> None:
    audit_record(action="web3.tx_rejected", subject_type="payment_session", subject_id=charge.session_id,
                 account_id=charge.account_id, actor=actor,
                 data={"tx_hash": tx_hash, "code": exc.code, "message": exc.message})


def tx_verify(*, charge: Web3Charge, tx_hash: str, actor: str = "system:web3", email: str = "") -> TxCheck:
    """Read one transaction from the chain and record what it pays this charge.

    Raises TxRejected (recorded in the audit trail) when it cannot pay it, ChainUnavailable or
    ChainMismatch when the chain cannot be trusted or reached; then nothing is decided.
    `email` (the customer's, from the checkout page) is stored only when the transaction is
    mined and transfers to this charge, and before it can settle the session.
    """
    tx_hash = normalize_tx_hash(tx_hash)
    w3 = checked_web3(charge.chain_id)
    try:
        receipt = w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        receipt = None
    if receipt is None:
        # Not mined (yet), or dropped by a reorg: forget what we believed about it.
        _drop(charge=charge, tx_hash=tx_hash, actor=actor)
        return TxCheck(tx_hash=tx_hash, result=settle(charge=charge, actor=actor))
    try:
        found = _find_transfers(w3, charge, tx_hash, receipt)
    except TxRejected as exc:
        _audit_rejected(charge, tx_hash, exc, actor)
        raise
    block_number = int(receipt["blockNumber"])
    block = w3.eth.get_block(block_number)
    confirmations = max(0, int(w3.eth.block_number) - block_number + 1)
    status = (Web3Transfer.Status.CONFIRMED if confirmations >= settings.WEB3_MIN_CONFIRMATIONS
              else Web3Transfer.Status.CONFIRMING)
    check = TxCheck(tx_hash=tx_hash)
    for item in found:
        values = {"sender": item.sender, "token": item.token, "amount": item.amount, "block_number": block_number,
                  "block_hash": hex_string(block["hash"]).lower(), "block_time": datetime.fromtimestamp(block["timestamp"], tz=UTC),
                  "confirmations": confirmations, "status": status, "updated_at": timezone.now()}
        try:
            with transaction.atomic():
                transfer, created = Web3Transfer.objects.select_for_update().get_or_create(
                    chain_id=charge.chain_id, tx_hash=tx_hash, log_index=item.log_index,
                    defaults={"charge": charge, **values})
        except IntegrityError:
            # Another session's verification stored this transfer at the same instant.
            transfer, created = Web3Transfer.objects.get(chain_id=charge.chain_id, tx_hash=tx_hash,
                                                         log_index=item.log_index), False
        if transfer.charge_id != charge.pk:
            exc = TxRejected("tx_already_used", "This transfer already paid another session.")
            _audit_rejected(charge, tx_hash, exc, actor)
            raise exc
        if not created:
            Web3Transfer.objects.filter(pk=transfer.pk).update(**values)
            transfer.refresh_from_db()
        else:
            audit_record(action="web3.transfer_seen", subject_type="payment_session", subject_id=charge.session_id,
                         account_id=charge.account_id, actor=actor,
                         data={"tx_hash": tx_hash, "log_index": item.log_index, "amount": str(item.amount),
                               "block_number": block_number, "confirmations": confirmations})
        check.transfers.append(transfer)
    if email and check.transfers:
        session_set_customer(session_id=charge.session_id, email=email)
    check.result = settle(charge=charge, actor=actor)
    for transfer in check.transfers:
        transfer.refresh_from_db()
    return check


def _drop(*, charge: Web3Charge, tx_hash: str, actor: str) -> None:
    live = Web3Transfer.objects.filter(charge=charge, tx_hash=tx_hash).exclude(status=Web3Transfer.Status.DROPPED)
    for transfer in live:
        Web3Transfer.objects.filter(pk=transfer.pk).update(status=Web3Transfer.Status.DROPPED,
                                                           updated_at=timezone.now())
        audit_record(action="web3.transfer_dropped", subject_type="payment_session", subject_id=charge.session_id,
                     account_id=charge.account_id, actor=actor,
                     data={"tx_hash": tx_hash, "log_index": transfer.log_index, "block_number": transfer.block_number})


def _note(charge: Web3Charge, transfers: list[Web3Transfer], note: str, actor: str, data: dict[str, Any]) -> None:
    for transfer in transfers:
        if transfer.note != note:
            Web3Transfer.objects.filter(pk=transfer.pk).update(note=note)
            if note in ("underpaid", "overpaid", "late", "outside_quote"):
                audit_record(action=f"web3.{note}", subject_type="payment_session", subject_id=charge.session_id,
                             account_id=charge.account_id, actor=actor,
                             data={**data, "tx_hash": transfer.tx_hash, "log_index": transfer.log_index})


def settle(*, charge: Web3Charge, actor: str = "system:web3") -> WebhookResult | None:
    """What the recorded transfers mean for the session, applied through the state machine."""
    transfers = list(charge.transfers.exclude(status=Web3Transfer.Status.DROPPED).order_by("block_number", "log_index"))
    if not transfers:
        return None
    confirmed = [t for t in transfers if t.status == Web3Transfer.Status.CONFIRMED]
    last = transfers[-1]
    base = {"chain_id": charge.chain_id, "address": charge.address, "asset": charge.asset}
    if not confirmed:
        return _apply(charge, Action.PENDING, event_id=f"{charge.chain_id}:{last.tx_hash}:{last.log_index}:seen",
                      reference=last.tx_hash, payload={**base, "tx_hash": last.tx_hash, "note": "confirming",
                                                       "confirmations": last.confirmations}, actor=actor)
    total = sum(int(t.amount) for t in confirmed)
    paid_by = confirmed[-1]
    grace = timedelta(seconds=settings.WEB3_GRACE_SECONDS)
    quotes = [q for q in charge.quotes.all()
              if q.created_at - CLOCK_SKEW <= paid_by.block_time <= q.expires_at + grace]
    data = {**base, "tx_hash": paid_by.tx_hash, "log_index": paid_by.log_index, "received": str(total)}
    if not quotes:
        _note(charge, confirmed, "outside_quote", actor, data)
        return _apply(charge, Action.PENDING, event_id=f"{charge.chain_id}:{paid_by.tx_hash}:{paid_by.log_index}:outside",
                      reference=paid_by.tx_hash, payload={**data, "note": "outside_quote"}, actor=actor)
    quote = min(quotes, key=lambda q: q.amount)
    required = int(quote.amount)
    minimum = math.ceil(Decimal(required) * (1 - settings.WEB3_AMOUNT_TOLERANCE))
    data.update(required=str(required), quote_expires_at=quote.expires_at.isoformat())
    if total < minimum:
        _note(charge, confirmed, "underpaid", actor, data)
        return _apply(charge, Action.PENDING, event_id=f"{charge.chain_id}:{paid_by.tx_hash}:{paid_by.log_index}:underpaid",
                      reference=paid_by.tx_hash, payload={**data, "note": "underpaid"}, actor=actor)
    note = "late" if paid_by.block_time > quote.expires_at else ("overpaid" if total > required else "paid")
    _note(charge, confirmed, note, actor, data)
    return _apply(charge, Action.PAID, event_id=f"{charge.chain_id}:{paid_by.tx_hash}:{paid_by.log_index}:paid",
                  reference=paid_by.tx_hash, payload={**data, "note": note}, actor=actor)


def _apply(charge: Web3Charge, action: str, *, event_id: str, reference: str, payload: dict[str, Any],
           actor: str) -> WebhookResult:
    event = PaymentEvent(provider=NAME, event_id=event_id, event_type=f"web3.{payload['note']}", payload=payload,
                         action=action, session_ref=str(charge.session_id), provider_reference=reference)
    return payment_event_apply(event, actor=actor)


def session_tx_submit(*, session_id: uuid.UUID, tx_hash: str, email: str = "") -> TxCheck:
    """The customer's page (or anyone) names a transaction; only the chain decides what it pays."""
    charge = Web3Charge.objects.filter(session_id=session_id).first()
    if charge is None:
        raise TxRejected("web3_not_offered", "This session takes no crypto payment.")
    return tx_verify(charge=charge, tx_hash=tx_hash, actor="customer:web3_tx", email=email)


__all__ = ["ChainMismatch", "ChainUnavailable", "TxRejected", "charge_create", "quote_latest", "quote_refresh", "session_tx_submit",
           "settle", "tx_verify", "web3_public"]
