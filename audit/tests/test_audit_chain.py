"""The audit trail: per-merchant SHA-256 chains where an edit or a deletion shows."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditChain, AuditEvent
from audit.services import GENESIS, audit_record, audit_verify

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table


def _record(account_id: int | None, n: int = 3) -> list[AuditEvent]:
    return [audit_record(action="test.step", subject_type="thing", subject_id=i, account_id=account_id,
                         actor="test", before={"n": i}, after={"n": i + 1, "amount": "9.99"}, data={"i": i})
            for i in range(n)]


def _sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _verify_command() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("verify_audit", stdout=out, stderr=err)
    return out.getvalue()


def test_an_untouched_chain_verifies():
    # given events in two merchants' chains and the system chain
    _record(1)
    _record(2)
    _record(None)

    # then every chain verifies, and the command says so and exits 0
    assert audit_verify() == []
    assert "intact" in _verify_command()


@pytest.mark.parametrize("value", [1e20, 0.1, 1.5e-7, 2**70, "é\u2028✓", {"b": 1, "a": [1, 2.50, None]}])
def test_any_json_value_in_a_row_verifies_after_the_database_round_trip(value):
    audit_record(action="test.value", subject_type="thing", subject_id=1, account_id=1, data={"v": value},
                 before={"v": value}, after=None)

    assert audit_verify() == []


def test_each_row_links_to_the_previous_row_of_its_own_chain():
    first = _record(1, 2)
    other = _record(2, 1)
    more = _record(1, 1)

    assert first[0].prev_hash == GENESIS
    assert first[1].prev_hash == first[0].hash
    assert more[0].prev_hash == first[1].hash
    assert (more[0].scope, more[0].seq) == ("account:1", 3)
    assert (other[0].scope, other[0].seq, other[0].prev_hash) == ("account:2", 1, GENESIS)
    assert AuditChain.objects.get(scope="account:1").head_hash == more[0].hash


@pytest.mark.parametrize(("column", "value"), [
    ("actor", "'someone else'"),
    ("action", "'session.failed'"),
    ("subject_id", "'999'"),
    ("created_at", "created_at + interval '1 second'"),
    ("data", "'{\"i\": 42}'"),
])
def test_an_edited_row_is_detected(column, value):
    # given a chain, and one row in its middle edited behind the application's back
    events = _record(7)
    if connection.vendor != "postgresql" and "interval" in value:
        value = "datetime(created_at, '+1 second')"
    _sql(f"UPDATE {TABLE} SET {column} = {value} WHERE id = %s", events[1].pk)  # noqa: S608

    # then verification reports that row, and the command exits non-zero
    breaks = audit_verify()
    assert [(b.scope, b.seq) for b in breaks] == [("account:7", 2)]
    assert "altered" in breaks[0].reason
    with pytest.raises(CommandError, match="broken"):
        _verify_command()


def test_an_edit_that_also_fixes_the_rows_own_hash_breaks_the_next_link():
    events = _record(7)
    _sql(f"UPDATE {TABLE} SET hash = %s WHERE id = %s", "f" * 64, events[1].pk)  # noqa: S608

    reasons = {(b.seq, b.reason) for b in audit_verify()}

    assert (2, "row content was altered") in reasons
    assert (3, "previous hash does not match") in reasons


@pytest.mark.parametrize("which", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_deleted_row_is_detected(which):
    # given a chain with one row deleted with raw SQL
    events = _record(7)
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", events[which].pk)  # noqa: S608

    # then verification reports a break in that chain, and the command exits non-zero
    breaks = audit_verify()
    assert breaks
    assert {b.scope for b in breaks} == {"account:7"}
    with pytest.raises(CommandError):
        _verify_command()


def test_a_truncated_chain_is_detected():
    _record(7)
    _sql(f"DELETE FROM {TABLE} WHERE scope = %s", "account:7")  # noqa: S608

    assert [b.scope for b in audit_verify()] == ["account:7"]


def test_a_deleted_chain_head_is_detected():
    _record(7)
    _sql(f"DELETE FROM {AuditChain._meta.db_table} WHERE scope = %s", "account:7")  # noqa: S608

    assert [b.scope for b in audit_verify()] == ["account:7"]
    assert [b.scope for b in audit_verify(scope="account:7")] == ["account:7"]


def test_a_break_in_one_merchants_chain_leaves_the_others_intact():
    events = _record(1)
    _record(2)
    _sql(f"UPDATE {TABLE} SET actor = 'x' WHERE id = %s", events[0].pk)  # noqa: S608

    assert {b.scope for b in audit_verify()} == {"account:1"}
    assert audit_verify(scope="account:2") == []
    call_command("verify_audit", "--scope", "account:2", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("verify_audit", "--scope", "account:1", stdout=io.StringIO(), stderr=io.StringIO())


def test_rows_cannot_be_changed_or_deleted_through_the_orm():
    event = _record(1, 1)[0]

    event.actor = "someone else"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_the_whole_flow_writes_a_verifiable_trail(api, deliver_paid):
    # given a merchant who changed its account, created a session that was then paid
    api.patch("/account", {"vat_rate": "19"}, format="json")
    session_id = api.post("/create_session", {"amount": "10"}, format="json").json()["session_id"]
    deliver_paid(session_id)

    # then the merchant's chain holds each step, in order, and verifies
    actions = list(AuditEvent.objects.filter(scope__startswith="account:").values_list("action", flat=True))
    assert actions == ["account.created", "key.issued", "account.updated", "session.created", "session.paid"]
    assert audit_verify() == []


@pytest.fixture
def deliver_paid(client):
    import json
    from decimal import Decimal

    from sessions_app.providers import stripe_provider

    def deliver(session_id: str) -> None:
        body = json.dumps(stripe_provider.test_event(session_id=session_id, event_type="payment_intent.succeeded",
                                                     amount=Decimal("10"), currency="EUR"))
        response = client.post("/webhooks/stripe", body, content_type="application/json",
                               HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
        assert response.json()["outcome"] == "processed"

    return deliver


@pytest.mark.parametrize("fields", [
    {},
    {"scope": "account:1", "account_id": 1, "action": "x", "data": {"seq": 3, "prev": "p"}},
    {"actor": 'quote " and \\ backslash', "subject_id": "é\u2028✓", "before": None, "after": {"z": [1.5, None]}},
    {"aaa": 1, "zzz": 2, "prev_hash": "h", "sequence": 0},
])
def test_the_pieces_the_database_hashes_rebuild_the_canonical_text(fields):
    # given any fields of a link, and the chain values the database fills in
    from audit.services import _canonical, canonical_parts

    head, mid, tail = canonical_parts(fields)
    for prev, seq in ((GENESIS, 1), ("ab" * 32, 123456789012)):
        # then head + prev + mid + seq + tail is exactly the text audit_verify hashes
        assert head + prev + mid + str(seq) + tail == _canonical(prev, {**fields, "seq": seq})


def test_the_chain_head_remembers_the_hash_its_link_points_to():
    first, second = _record(99, n=2)

    chain = AuditChain.objects.get(scope="account:99")
    assert (chain.seq, chain.prev_hash, chain.head_hash) == (2, first.hash, second.hash)
    assert (second.prev_hash, AuditEvent.objects.get(pk=second.pk).hash) == (first.hash, second.hash)
