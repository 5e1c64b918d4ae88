from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditChain, AuditEvent
from core import db

SYSTEM_SCOPE = "system"
GENESIS = "0" * 64


def _jsonable(value: Any) -> Any:
    # Round-trip through JSON so the hash covers exactly what the database stores. Floats are kept
    # as their text: PostgreSQL's jsonb gives 1e20 back as 100000000000000000000, another hash.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True), parse_float=str)


def event_digest(*, prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(prev_hash, fields).encode()).hexdigest()


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


_encode = partial(json.dumps, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)


def _canonical(prev_hash: str, fields: dict[str, Any]) -> str:
    return _encode({"prev": prev_hash, **fields})


def canonical_parts(fields: dict[str, Any]) -> tuple[str, str, str]:
    """The canonical text of a link around its two chain values: head + prev + mid + str(seq) + tail.

    It lets the database compute a link's hash while it advances the chain head, in the same
    statement. The pieces are encoded key by key exactly as _canonical encodes the whole, so
    the hash the database computes is the one audit_verify recomputes.
    """
    pieces, current = [], "{"
    for index, key in enumerate(sorted({*fields, "prev", "seq"})):
        current += ("," if index else "") + _encode(key) + ":"
        if key == "prev":
            pieces.append(current + '"')
            current = '"'
        elif key == "seq":
            pieces.append(current)
            current = ""
        else:
            current += _encode(fields[key])
    head, mid = pieces
    return head, mid, current + "}"


def audit_event(
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
    """A link not yet in its chain (the merchant's, or the system chain): no seq, no hashes."""
    return AuditEvent(
        scope=f"account:{account_id}" if account_id is not None else SYSTEM_SCOPE,
        created_at=timezone.now(),
        actor=actor[:200],
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        account_id=account_id,
        before=_jsonable(before),
        after=_jsonable(after),
        data=_jsonable(data or {}),
    )


def audit_record(**fields: Any) -> AuditEvent:
    """Append one link to its chain (see audit_event for the fields)."""
    return audit_append(audit_event(**fields))


def audit_append(event: AuditEvent) -> AuditEvent:
    """Append a link built by audit_event to its chain, on its own."""
    if db.one_statement():
        statement = audit_link_statement(event)
        row = db.fetchone(f"WITH {statement.ctes} SELECT * FROM {statement.returns}",  # noqa: S608 - SQL of our own
                          statement.params)
        audit_appended(event, row)
    else:
        _append(event)
    return event


def _append(event: AuditEvent) -> None:
    """Lock the chain head, link the event to it, and move the head: three statements."""
    # No savepoint of its own: inside a caller's transaction a failure here fails the caller anyway.
    with transaction.atomic(savepoint=False):
        chain, _ = AuditChain.objects.select_for_update().get_or_create(scope=event.scope)
        event.seq, event.prev_hash = chain.seq + 1, chain.head_hash
        event.hash = event_digest(prev_hash=event.prev_hash, fields=_hashed_fields(event))
        event.save()
        AuditChain.objects.filter(scope=event.scope).update(seq=event.seq, prev_hash=event.prev_hash,
                                                            head_hash=event.hash)


# ---------------------------------------------------------------- the link as part of a caller's statement


@dataclass(frozen=True)
class LinkStatement:
    """PostgreSQL: common table expressions that append one audit link, for a caller's statement.

    `ctes` goes in the caller's WITH list; its parameters, in order, are `params`. `returns`
    names the one CTE a caller may read: one row (id, seq, prev_hash, hash) if the link was
    written, none if `only_if` gave no row. Pass that row to audit_appended. Every other name
    in `ctes` is audit's own and may change.
    """

    ctes: str
    params: list[Any]
    returns: str


def audit_link_statement(event: AuditEvent, *, only_if: str | None = None) -> LinkStatement:
    """The CTEs that advance `event`'s chain, hash the link in the database and insert it.

    A caller puts them in its own statement, so that a state change and its audit link are
    written together or neither is: `only_if` names a CTE of the caller's (no row there, no
    link). The chain head's upsert takes the head row's lock, so two writers of one chain queue
    there and the second links to the first's committed head.
    """
    params = db.insert_params(event, [f for f in _LINK_FIELDS if f.name not in _CHAINED])
    hashed = _hashed_fields(event)
    head, mid, tail = canonical_parts(hashed)
    first_hash = event_digest(prev_hash=GENESIS, fields={**hashed, "seq": 1})
    return LinkStatement(_link_ctes(only_if), [event.scope, first_hash, GENESIS, head, mid, tail, *params],
                         returns=_LINK_CTE)


_LINK_FIELDS = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
_CHAINED = {"seq": "audit_head.seq", "prev_hash": "audit_head.prev_hash", "hash": "audit_head.head_hash"}
_LINK_CTE = "audit_link"


@functools.cache
def _link_ctes(only_if: str | None) -> str:
    """The SQL of audit_link_statement, built once per gate (only the parameters change)."""
    quote = connection.ops.quote_name
    values = [_CHAINED.get(f.name, "%s") for f in _LINK_FIELDS]
    gate = f" FROM {quote(only_if)}" if only_if else ""
    return (
        f"audit_head AS (INSERT INTO {quote(AuditChain._meta.db_table)} AS chain (scope, seq, head_hash, prev_hash) "  # noqa: S608
        f"SELECT %s, 1, %s, %s{gate} ON CONFLICT (scope) DO UPDATE SET seq = chain.seq + 1, "
        # The new link's hash over head + previous hash + mid + seq + tail (see canonical_parts).
        f"prev_hash = chain.head_hash, head_hash = encode(sha256(convert_to("
        f"%s || chain.head_hash || %s || (chain.seq + 1)::text || %s, 'UTF8')), 'hex') "
        f"RETURNING seq, prev_hash, head_hash), "
        f"{_LINK_CTE} AS (INSERT INTO {quote(AuditEvent._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in _LINK_FIELDS)}) SELECT {', '.join(values)} FROM audit_head "
        f"RETURNING {quote(AuditEvent._meta.pk.column)}, seq, prev_hash, hash)"
    )


def audit_appended(event: AuditEvent, row: tuple[int, int, str, str]) -> None:
    """Fill in what the database decided for a link written by audit_link_statement."""
    pk, event.seq, event.prev_hash, event.hash = row
    db.mark_inserted(event, pk)


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
