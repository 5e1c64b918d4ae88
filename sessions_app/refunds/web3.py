"""A crypto refund: we hold no private keys, so the money goes back in three steps.

1. The customer gets a claim link (emailed by invoices_app) and enters a receiving address:
   a deposit address cannot be refunded to, the sender may be an exchange.
2. The merchant pays out from its own wallet and submits the transaction hash.
3. The chain decides: the refund succeeds once a transfer of the session's asset, of at least the
   refund's share of what was paid, to the claimed address has WEB3_MIN_CONFIRMATIONS.
   A payout to any other address, or of another asset, never counts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from eth_utils import is_address, to_checksum_address
from web3.exceptions import TransactionNotFound

from audit.services import audit_record
from core import errors
from keys_app.models import Account
from sessions_app.crypto.chain import checked_web3
from sessions_app.crypto.services import TxRejected, _find_transfers, normalize_tx_hash
from sessions_app.models import Web3Charge, Web3Transfer
from sessions_app.refunds.models import Refund, RefundStatus
from sessions_app.refunds.state import refund_succeed, session_lock

CLAIM_SALT = "sessions_app.refunds.claim"
CLAIM_MAX_AGE = 30 * 24 * 3600


def claim_token(refund: Refund) -> str:
    return signing.dumps(str(refund.pk), salt=CLAIM_SALT, compress=False)


def claim_url(refund: Refund) -> str:
    return f"{settings.PUBLIC_BASE_URL}/refund-claim/{claim_token(refund)}"


def refund_for_claim(token: str) -> Refund | None:
    try:
        refund_id = signing.loads(token, salt=CLAIM_SALT, max_age=CLAIM_MAX_AGE)
        return Refund.objects.select_related("session", "account").filter(pk=uuid.UUID(str(refund_id))).first()
    except (signing.BadSignature, ValueError):
        return None


@transaction.atomic
def refund_claim_submit(*, token: str, address: str) -> Refund:
    """The customer's receiving address, once, while the refund is pending."""
    refund = refund_for_claim(token)
    if refund is None:
        raise errors.NotFound("claim_not_found", "This claim link is not valid.")
    session_lock(refund.session_id)
    refund = Refund.objects.select_for_update().get(pk=refund.pk)
    if refund.status != RefundStatus.PENDING:
        raise errors.Conflict("refund_not_pending", f"This refund is already {refund.status}.")
    if refund.claim_address:
        raise errors.Conflict("claim_already_made", "A receiving address was already given for this refund.")
    address = (address or "").strip()
    if not is_address(address):
        raise errors.DomainError("address_invalid", "Enter an Ethereum address (0x and 40 hex digits).",
                                 field="address")
    refund.claim_address = to_checksum_address(address)
    refund.claimed_at = timezone.now()
    Refund.objects.filter(pk=refund.pk).update(claim_address=refund.claim_address, claimed_at=refund.claimed_at)
    audit_record(action="refund.claimed", subject_type="refund", subject_id=refund.pk,
                 account_id=refund.account_id, actor="customer:claim_link",
                 after={"claim_address": refund.claim_address})
    return refund


def payout_minimum(refund: Refund, charge: Web3Charge) -> int:
    """The refund's share of what the customer paid, in the asset's smallest units (rounded up)."""
    paid = (Web3Transfer.objects.filter(charge=charge, status=Web3Transfer.Status.CONFIRMED)
            .aggregate(total=Sum("amount"))["total"] or Decimal(0))
    share = Decimal(paid) * refund.amount / refund.session.amount
    return int(share.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class PayoutCheck:
    refund: Refund
    confirmations: int
    amount: int
    minimum: int


def refund_payout_submit(*, account: Account, refund_id: uuid.UUID, tx_hash: str, actor: str) -> PayoutCheck:
    """Read the merchant's payout from the chain; the refund succeeds once it is confirmed."""
    refund = Refund.objects.select_related("session").filter(pk=refund_id, account=account).first()
    if refund is None:
        raise errors.NotFound("refund_not_found", "No such refund.")
    if refund.provider != "web3":
        raise errors.Conflict("refund_not_web3", "Only a crypto refund is paid out by transaction.")
    if not refund.claim_address:
        raise errors.Conflict("claim_missing", "The customer has not given a receiving address yet.")
    try:
        tx_hash = normalize_tx_hash(tx_hash)
    except TxRejected as exc:
        raise errors.DomainError(exc.code, exc.message, field="tx_hash") from None
    charge = Web3Charge.objects.get(session_id=refund.session_id)
    w3 = checked_web3()
    try:
        receipt = w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        receipt = None
    if receipt is None:
        return PayoutCheck(refund, 0, 0, payout_minimum(refund, charge))
    # The claimed address stands in for the session's: the same reading of the chain, to there.
    target = Web3Charge(session_id=charge.session_id, account_id=charge.account_id, chain_id=charge.chain_id,
                        address=refund.claim_address, asset=charge.asset, address_index=0)
    try:
        found = _find_transfers(w3, target, tx_hash, receipt)
    except TxRejected as exc:
        audit_record(action="refund.payout_rejected", subject_type="refund", subject_id=refund.pk,
                     account_id=refund.account_id, actor=actor, data={"tx_hash": tx_hash, "code": exc.code})
        raise errors.Unprocessable(f"payout_{exc.code.removeprefix('tx_')}",
                                   f"{exc.message} (the refund's receiving address is {refund.claim_address})",
                                   field="tx_hash") from None
    amount = sum(item.amount for item in found)
    minimum = payout_minimum(refund, charge)
    if amount < minimum:
        raise errors.Unprocessable("payout_too_small", f"The payout moves {amount}; the refund needs {minimum}.",
                                   field="tx_hash")
    confirmations = max(0, int(w3.eth.block_number) - int(receipt["blockNumber"]) + 1)
    with transaction.atomic():
        session = session_lock(refund.session_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.payout_tx_hash != tx_hash:
            if Refund.objects.filter(payout_tx_hash=tx_hash).exclude(pk=refund.pk).exists():
                raise errors.Conflict("payout_already_used", "This transaction already paid another refund.")
            Refund.objects.filter(pk=refund.pk).update(payout_tx_hash=tx_hash)
            refund.payout_tx_hash = tx_hash
            audit_record(action="refund.payout_seen", subject_type="refund", subject_id=refund.pk,
                         account_id=refund.account_id, actor=actor,
                         data={"tx_hash": tx_hash, "amount": str(amount), "confirmations": confirmations})
        if refund.status == RefundStatus.PENDING and confirmations >= settings.WEB3_MIN_CONFIRMATIONS:
            refund_succeed(session=session, refund=refund, actor=actor, provider_reference=tx_hash)
    return PayoutCheck(refund, confirmations, amount, minimum)
