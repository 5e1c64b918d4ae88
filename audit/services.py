from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from audit.models import AuditChain, AuditEvent

SYSTEM_SCOPE = "system"
GENESIS = "0" * 64


def _jsonable(value: Any) -> Any:
    # Round-trip through JSON so the hash covers exactly what the database stores. Floats are kept
    # as their text: PostgreSQL's jsonb gives 1e20 back as 100000000000000000000, another hash.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True), parse_float=str)


def event_digest(*, prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps({"prev": prev_hash, **fields}, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "scope": event.scope,
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": str(event.subject_id),
        "account_id": event.account_id,
        "before": event.before,
        "after": event.after,
        "data": event.data,
    }


def audit_record(
    *,
    action: str,
    subject_type: str,
    subject_id: Any,
    account_id: int | None = None,
    actor: str = "system",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one link to the chain of the merchant (or the system chain)."""
    scope = f"account:{account_id}" if account_id is not None else SYSTEM_SCOPE
    with transaction.atomic():
        AuditChain.objects.get_or_create(scope=scope)
        # Lock the head: two writers of one chain must not both link to the same parent.
        chain = AuditChain.objects.select_for_update().get(scope=scope)
        event = AuditEvent(
            scope=scope,
            seq=chain.seq + 1,
            created_at=timezone.now(),
            actor=actor[:200],
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            account_id=account_id,
            before=_jsonable(before),
            after=_jsonable(after),
            data=_jsonable(data or {}),
            prev_hash=chain.head_hash,
        )
        event.hash = event_digest(prev_hash=event.prev_hash, fields=_hashed_fields(event))
        event.save()
        AuditChain.objects.filter(scope=scope).update(seq=event.seq, head_hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainBreak:
    scope: str
    seq: int
    reason: str


def audit_verify(*, scope: str | None = None) -> list[ChainBreak]:
    """Walk every chain (or one) and report each place where it does not hold."""
    breaks: list[ChainBreak] = []
    heads = {chain.scope: chain for chain in
             (AuditChain.objects.all() if scope is None else AuditChain.objects.filter(scope=scope))}
    # Rows whose chain head was deleted must still be walked (and reported).
    row_scopes = AuditEvent.objects.values_list("scope", flat=True).distinct().order_by()
    if scope is not None:
        row_scopes = row_scopes.filter(scope=scope)
    for name in sorted(set(heads) | set(row_scopes)):
        expected_prev, expected_seq = GENESIS, 1
        for event in AuditEvent.objects.filter(scope=name).order_by("seq").iterator(chunk_size=2000):
            if event.seq != expected_seq:
                breaks.append(ChainBreak(name, expected_seq, f"missing link(s) before seq {event.seq}"))
            if event.prev_hash != expected_prev:
                breaks.append(ChainBreak(name, event.seq, "previous hash does not match"))
            if event_digest(prev_hash=event.prev_hash, fields=_hashed_fields(event)) != event.hash:
                breaks.append(ChainBreak(name, event.seq, "row content was altered"))
            expected_prev, expected_seq = event.hash, event.seq + 1
        chain = heads.get(name)
        if chain is None:
            breaks.append(ChainBreak(name, expected_seq - 1, "chain head is missing"))
        elif chain.seq != expected_seq - 1 or chain.head_hash != expected_prev:
            breaks.append(ChainBreak(name, chain.seq, "chain head does not match the last row (rows deleted?)"))
    return breaks
