"""Looking at the chain without being asked: the poller over the watched addresses, and the
signed address-activity hints that make it look at once. What it finds is verified and settled
by sessions_app.crypto.services, like a transaction the customer submits."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from eth_utils import to_checksum_address

from core import errors
from sessions_app.crypto.chain import ChainMismatch, ChainUnavailable, checked_web3, configured_chains
from sessions_app.crypto.services import TRANSFER_TOPIC, TxRejected, hex_string, tx_verify
from sessions_app.events import ChainHint, Outcome, WebhookResult
from sessions_app.models import OPEN_STATUSES, Status, Web3Charge, Web3ScanCursor, Web3Transfer

logger = logging.getLogger(__name__)

# A hint is about recent activity: how many blocks back it makes us look.
HINT_SCAN_BLOCKS = 100



def _watched_charges(*, chain_id: int, addresses: set[str] | None = None) -> list[Web3Charge]:
    """Charges of open sessions, and of sessions that failed lately: a transfer to one of those
    is money that arrived late, to be kept as a late payment, never ignored."""
    since = timezone.now() - timedelta(seconds=settings.WEB3_LATE_PAYMENT_WATCH_SECONDS)
    qs = Web3Charge.objects.filter(Q(session__status__in=OPEN_STATUSES)
                                   | Q(session__status=Status.FAILED, session__failed_at__gte=since),
                                   chain_id=chain_id)
    charges = list(qs.select_related("session"))
    if addresses is not None:
        charges = [c for c in charges if c.address.lower() in addresses]
    return charges


def _recheck(charge: Web3Charge, actor: str) -> int:
    """Look again at transactions already seen: confirmations grow, reorgs drop them."""
    hashes = set(charge.transfers.exclude(status=Web3Transfer.Status.DROPPED).values_list("tx_hash", flat=True))
    for tx_hash in sorted(hashes):
        try:
            tx_verify(charge=charge, tx_hash=tx_hash, actor=actor)
        except TxRejected:
            pass
    return len(hashes)


def _discover(w3, charges: list[Web3Charge], start: int, end: int, actor: str) -> int:
    """Find transfers to open addresses in blocks start..end and verify each transaction."""
    by_address = {c.address.lower(): c for c in charges}
    candidates: set[tuple[int, str]] = set()
    native = {a for a, c in by_address.items() if c.asset["type"] == "native"}
    if native:
        for number in range(start, end + 1):
            block = w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if tx["to"] and tx["to"].lower() in native:
                    candidates.add((by_address[tx["to"].lower()].pk, hex_string(tx["hash"]).lower()))
    tokens: dict[str, list[str]] = {}
    for address, charge in by_address.items():
        if charge.asset["type"] == "erc20":
            tokens.setdefault(charge.asset["address"], []).append(address)
    for token, addresses in tokens.items():
        logs = w3.eth.get_logs({"fromBlock": start, "toBlock": end, "address": to_checksum_address(token),
                                "topics": [TRANSFER_TOPIC, None, ["0x" + "0" * 24 + a[2:] for a in addresses]]})
        for log in logs:
            recipient = "0x" + hex_string(log["topics"][2])[-40:].lower()
            if recipient in by_address:
                candidates.add((by_address[recipient].pk, hex_string(log["transactionHash"]).lower()))
    charges_by_pk = {c.pk: c for c in charges}
    for charge_pk, tx_hash in sorted(candidates):
        try:
            tx_verify(charge=charges_by_pk[charge_pk], tx_hash=tx_hash, actor=actor)
        except TxRejected:
            pass
    return len(candidates)


def web3_poll(*, actor: str = "system:web3_poller") -> dict[str, int]:
    """The safety net: recheck seen transfers and scan new blocks, so a missed hint loses nothing.

    Each configured chain (the test chain, the live chain) is polled for its own charges.
    """
    totals = {"charges": 0, "rechecked": 0, "found": 0}
    for chain_id in configured_chains():
        for key, value in _poll_chain(chain_id=chain_id, actor=actor).items():
            totals[key] += value
    return totals


def _poll_chain(*, chain_id: int, actor: str) -> dict[str, int]:
    charges = _watched_charges(chain_id=chain_id)
    if not charges:
        return {"charges": 0, "rechecked": 0, "found": 0}
    w3 = checked_web3(chain_id)
    rechecked = sum(_recheck(c, actor) for c in charges)
    latest = int(w3.eth.block_number)
    cursor = Web3ScanCursor.objects.filter(chain_id=chain_id).first()
    start = cursor.block_number + 1 if cursor else max(0, latest - settings.WEB3_SCAN_MAX_BLOCKS + 1)
    # A backlog is worked off over several runs rather than skipped: every block gets looked at.
    end = min(latest, start + settings.WEB3_SCAN_MAX_BLOCKS - 1)
    found = 0
    if start <= end:
        found = _discover(w3, _watched_charges(chain_id=chain_id), start, end, actor)
        Web3ScanCursor.objects.update_or_create(chain_id=chain_id,
                                                defaults={"block_number": end, "updated_at": timezone.now()})
    return {"charges": len(charges), "rechecked": rechecked, "found": found}


def web3_hint_receive(*, hint: ChainHint, actor: str) -> WebhookResult:
    """Apply a verified address-activity notification: read the chain for the sessions it names."""
    try:
        outcome = web3_hint(address=hint.address, tx_hash=hint.tx_hash, actor=actor, chain_id=hint.chain_id)
    except (ChainUnavailable, ChainMismatch) as exc:
        # The sender may retry; the poller looks anyway.
        raise errors.Unavailable("chain_unavailable", str(exc)) from None
    return WebhookResult(Outcome.PROCESSED if outcome["charges"] else Outcome.UNMATCHED,
                         f"checked {outcome['checked']} transaction(s) for {outcome['charges']} session(s)")


def web3_hint(*, address: str, tx_hash: str | None, actor: str = "webhook:web3",
              chain_id: int | None = None) -> dict[str, Any]:
    """A signed address-activity notification: only a reason to look at the chain ourselves."""
    chain_id = chain_id or (configured_chains() or [0])[0]
    charges = _watched_charges(chain_id=chain_id, addresses={address.lower()})
    if not charges:
        return {"charges": 0, "checked": 0}
    if tx_hash:
        checked = 0
        for charge in charges:
            try:
                tx_verify(charge=charge, tx_hash=tx_hash, actor=actor)
                checked += 1
            except TxRejected:
                pass
        return {"charges": len(charges), "checked": checked}
    w3 = checked_web3(chain_id)
    latest = int(w3.eth.block_number)
    for charge in charges:
        _recheck(charge, actor)
    # A hint is about recent activity; older blocks are the poller's job.
    window = min(settings.WEB3_SCAN_MAX_BLOCKS, HINT_SCAN_BLOCKS)
    found = _discover(w3, charges, max(0, latest - window + 1), latest, actor)
    return {"charges": len(charges), "checked": found}
