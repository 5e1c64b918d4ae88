"""The audit chain stays whole when many writers append to one merchant's chain at once."""

import pytest
from django.db import transaction

from audit.models import AuditChain, AuditEvent
from audit.services import GENESIS, audit_record, audit_verify
from tests.threads import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_first_link_of_a_chain_creates_its_head_and_links_to_genesis():
    # when a merchant's first change is audited
    event = audit_record(action="account.created", subject_type="account", subject_id=1, account_id=4242)

    # then the chain exists, starts at 1, and its head is that link
    chain = AuditChain.objects.get(scope="account:4242")
    assert (event.seq, event.prev_hash) == (1, GENESIS)
    assert (chain.seq, chain.head_hash) == (1, event.hash)
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash
    assert audit_verify() == []


def test_concurrent_writers_of_one_chain_never_fork_it():
    # given 8 threads, each appending 10 links to the same merchant's chain inside its own transactions
    threads, per_thread = 8, 10

    def work(i: int) -> None:
        for j in range(per_thread):
            with transaction.atomic():
                audit_record(action="session.created", subject_type="payment_session",
                             subject_id=f"{i}-{j}", account_id=7)

    run_together(threads, work, timeout=120)

    # then every link has its own place, each points at the one before, and the head is the last
    seqs = list(AuditEvent.objects.filter(scope="account:7").order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, threads * per_thread + 1))
    assert audit_verify(scope="account:7") == []


def test_a_rolled_back_change_leaves_no_link_and_no_gap():
    # given a chain with one link
    audit_record(action="a", subject_type="t", subject_id=1, account_id=9)

    # when a later change is rolled back after it was audited
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="b", subject_type="t", subject_id=2, account_id=9)
        raise RuntimeError("the change failed")
    audit_record(action="c", subject_type="t", subject_id=3, account_id=9)

    # then the chain goes on from where it was
    assert list(AuditEvent.objects.filter(scope="account:9").values_list("action", "seq")) == [("a", 1), ("c", 2)]
    assert audit_verify(scope="account:9") == []
