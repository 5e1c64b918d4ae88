"""Each step of a session's fulfilment, exactly once.

Every step first looks for its own result and returns it when it exists; the write of a
step runs under a lock on the session's Fulfilment row, and a unique constraint backs
each result (one invoice, one key, one link, one email record per session), so a retry,
a redelivered task or two workers at once never double anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.utils import timezone

from invoices_app.models import Fulfilment
from sessions_app.models import PaymentSession

ACTOR = "worker:fulfilment"

Result = TypeVar("Result")


def session_lock(session_id: uuid.UUID) -> Fulfilment:
    """Serialise the steps of one session: a second worker waits here, then finds the result.

    Lock order matters. PostgreSQL checks foreign keys at COMMIT (Django makes them deferred),
    which takes a share lock on the session row after we already hold the merchant's audit
    chain; a webhook for the same session holds that row and waits for the chain. Taking the
    session row first (FOR NO KEY UPDATE, which does not block other rows referencing it)
    gives both paths the same order: session, then chain.
    """
    PaymentSession.objects.select_for_update(no_key=True).only("pk").get(pk=session_id)
    fulfilment, _ = Fulfilment.objects.get_or_create(session_id=session_id)
    return Fulfilment.objects.select_for_update(no_key=True).get(pk=fulfilment.pk)


def step_mark(session_id: uuid.UUID, step: str) -> None:
    """Record when a step was done (`step` names its field on Fulfilment); the first time counts."""
    Fulfilment.objects.filter(pk=session_id, **{f"{step}__isnull": True}).update(**{step: timezone.now()})


def step_once(*, session_id: uuid.UUID, mark: str, find: Callable[[], Result | None], make: Callable[[], Result],
              look: Callable[[], Result | None] | None = None) -> Result:
    """The result of one step: found, or made under the session's lock if nobody made it yet.

    `find` looks for the result; `look`, when given, is a cheaper first look before the lock
    (at what the caller already holds): it may miss a result, `find` decides under the lock.
    The step is marked done in the transaction that makes its result, so neither stands
    without the other; the mark comes first, as it takes no lock the session lock does not
    hold already, and `make` writes its audit row last, which waits for the merchant's chain.
    """
    found = (look or find)()
    if found:
        return found
    with transaction.atomic():
        session_lock(session_id)
        found = find()
        if found:
            return found
        step_mark(session_id, mark)
        return make()
