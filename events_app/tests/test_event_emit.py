"""event_emit writes an event exactly when the change it reports commits."""

from __future__ import annotations

import pytest
from django.db import transaction

from events_app.models import Event
from events_app.services import event_emit

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_is_kept_with_the_change_that_committed(merchant):
    account = merchant
    with transaction.atomic():
        event = event_emit(account_id=account.pk, mode="test", type="session.created",
                           data={"id": "s1", "amount": "5.00"}, object_id="s1")

    stored = Event.objects.get()
    assert stored.id == event.id and stored.id.startswith("evt_") and len(stored.id) == 28
    assert (stored.type, stored.mode, stored.object_id, stored.data) == ("session.created", "test", "s1",
                                                                         {"id": "s1", "amount": "5.00"})


def test_a_rolled_back_change_leaves_no_event(merchant):
    account = merchant
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        event_emit(account_id=account.pk, mode="live", type="session.paid", data={})
        1 / 0  # noqa: B018 - the change fails after its event was written

    assert Event.objects.count() == 0


def test_it_refuses_to_write_outside_a_transaction(merchant):
    account = merchant
    with pytest.raises(RuntimeError, match="inside the transaction"):
        event_emit(account_id=account.pk, mode="test", type="session.created", data={})
    assert Event.objects.count() == 0
