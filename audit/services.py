from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
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


def _chain_advance(scope: str) -> tuple[int, str]:
    """Lock the head of a chain (creating it on first use) and take the next sequence number.

    One statement instead of get_or_create + SELECT FOR UPDATE: the upsert takes the row lock,
    so two writers of one chain queue here and the second sees the first's committed head.
    Returns the new link's seq and the hash it must link to.
    """
    table = connection.ops.quote_name(AuditChain._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (scope, seq, head_hash) VALUES (%s, 1, %s) "  # noqa: S608 - table name is ours
            f"ON CONFLICT (scope) DO UPDATE SET seq = {table}.seq + 1 RETURNING seq, head_hash",
            [scope, GENESIS],
        )
        seq, head_hash = cursor.fetchone()
    return seq, head_hash


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
    # No savepoint of its own: inside a caller's transaction a failure here fails the caller anyway.
    with transaction.atomic(savepoint=False):
        seq, prev_hash = _chain_advance(scope)
        event = AuditEvent(
            scope=scope,
            seq=seq,
            created_at=timezone.now(),
            actor=actor[:200],
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            account_id=account_id,
            before=_jsonable(before),
            after=_jsonable(after),
            data=_jsonable(data or {}),
            prev_hash=prev_hash,
        )
        event.hash = event_digest(prev_hash=event.prev_hash, fields=_hashed_fields(event))
        _append(event)
    return event


def _append(event: AuditEvent) -> None:
    """Insert the link and move the chain's head to it."""
    if connection.vendor != "postgresql":
        event.save()
        AuditChain.objects.filter(scope=event.scope).update(head_hash=event.hash)
        return
    # PostgreSQL: both writes in one statement (one round trip fewer on every audited change).
    quote = connection.ops.quote_name
    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    params = [f.get_db_prep_save(f.pre_save(event, True), connection) for f in fields]
    sql = (
        f"WITH link AS (INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        f"RETURNING {quote(AuditEvent._meta.pk.column)}) "
        f"UPDATE {quote(AuditChain._meta.db_table)} SET head_hash = %s WHERE scope = %s "
        f"RETURNING (SELECT {quote(AuditEvent._meta.pk.column)} FROM link)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, event.hash, event.scope])
        row = cursor.fetchone()
    if row is None:  # the chain row is locked by _chain_advance in this transaction: cannot vanish
        raise RuntimeError(f"audit chain {event.scope} disappeared")
    event.pk = row[0]
    event._state.adding = False
    event._state.db = connection.alias


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
