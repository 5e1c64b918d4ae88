"""The session state machine: created -> pending, created|pending -> paid|failed; paid and failed are terminal."""

from __future__ import annotations

import itertools

import pytest
from django.db import transaction
from django_fsm import ConcurrentTransition, TransitionNotAllowed, can_proceed

from sessions_app.models import PaymentSession, Status, WebhookEvent
from sessions_app.services import session_expire
from sessions_app.tests.conftest import stripe_event

pytestmark = pytest.mark.django_db

TRANSITIONS = {
    "mark_pending": {"kwargs": {"provider": "stripe", "provider_reference": "pi_1"}, "target": Status.PENDING},
    "mark_paid": {"kwargs": {"provider": "stripe", "provider_reference": "pi_1"}, "target": Status.PAID},
    "mark_failed": {"kwargs": {"reason": "card_declined"}, "target": Status.FAILED},
}
ALLOWED = {
    (Status.CREATED, "mark_pending"),
    (Status.CREATED, "mark_paid"),
    (Status.PENDING, "mark_paid"),
    (Status.CREATED, "mark_failed"),
    (Status.PENDING, "mark_failed"),
}
ALL_CASES = list(itertools.product(Status.values, TRANSITIONS))


def _session_in(make_session, status: str) -> PaymentSession:
    session = make_session()
    PaymentSession.objects.filter(pk=session.pk).update(status=status)
    return PaymentSession.objects.get(pk=session.pk)


@pytest.mark.parametrize(("source", "method"), sorted(ALLOWED))
def test_it_allows_each_transition_of_the_machine(make_session, source, method):
    # given a session in the source state
    session = _session_in(make_session, source)
    assert can_proceed(getattr(session, method))

    # when the transition runs and is saved
    getattr(session, method)(**TRANSITIONS[method]["kwargs"])
    session.save()

    # then the database holds the target state
    assert PaymentSession.objects.get(pk=session.pk).status == TRANSITIONS[method]["target"]


@pytest.mark.parametrize(("source", "method"), [case for case in ALL_CASES if case not in ALLOWED])
def test_it_forbids_every_other_transition(make_session, source, method):
    # given a session in a state the transition does not start from
    session = _session_in(make_session, source)
    assert not can_proceed(getattr(session, method))

    # when the transition is attempted, then it is refused and nothing changes
    with pytest.raises(TransitionNotAllowed):
        getattr(session, method)(**TRANSITIONS[method]["kwargs"])
    assert PaymentSession.objects.get(pk=session.pk).status == source


def test_it_refuses_a_direct_assignment_of_the_status(make_session):
    # given a session loaded from the database
    session = make_session()

    # when code assigns the status directly, then the field refuses it
    with pytest.raises(AttributeError, match="Direct status modification is not allowed"):
        session.status = Status.PAID
    assert PaymentSession.objects.get(pk=session.pk).status == Status.CREATED


def test_it_keeps_the_first_writer_when_a_stale_copy_saves_a_transition(make_session):
    # given two copies of one open session, and the first copy pays it
    session = make_session()
    first = PaymentSession.objects.get(pk=session.pk)
    stale = PaymentSession.objects.get(pk=session.pk)
    first.mark_paid(provider="stripe", provider_reference="pi_1")
    first.save()

    # when the stale copy fails it and saves, then the save is refused and the session stays paid
    stale.mark_failed(reason="card_declined")
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        stale.save()
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PAID


def test_an_expired_session_is_failed_with_reason_expired(make_session):
    session = make_session()

    session_expire(session_id=session.pk, actor="test")

    session = PaymentSession.objects.get(pk=session.pk)
    assert (session.status, session.failure_reason) == (Status.FAILED, "expired")
    assert session.failed_at is not None


LATE_EVENTS = [
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "checkout.session.expired",
    "payment_intent.succeeded",
    "checkout.session.completed",
    "expire",
]


@pytest.mark.parametrize("order", [LATE_EVENTS, list(reversed(LATE_EVENTS)), LATE_EVENTS[2:] + LATE_EVENTS[:2]])
def test_a_paid_session_stays_paid_whatever_arrives_next_in_any_order(make_session, deliver, api, order):
    # given a session paid by a signed webhook
    session = make_session()
    assert deliver(stripe_event(session, "payment_intent.succeeded")).json()["outcome"] == "processed"
    paid = PaymentSession.objects.get(pk=session.pk)

    # when every other kind of event (and an expiry request) arrives after it
    for kind in order:
        if kind == "expire":
            response = api.post(f"/sessions/{session.pk}/expire")
            assert response.status_code == 409
            assert response.json()["error"]["code"] == "session_not_open"
        else:
            response = deliver(stripe_event(session, kind))
            assert response.status_code == 200
            assert response.json()["outcome"] == "ignored"

    # then it is still paid, with the first payment's details, and each event was stored as ignored
    session = PaymentSession.objects.get(pk=session.pk)
    assert session.status == Status.PAID
    assert (session.paid_at, session.provider_reference) == (paid.paid_at, paid.provider_reference)
    assert WebhookEvent.objects.filter(session=session, outcome=WebhookEvent.Outcome.IGNORED).count() == len(order) - 1


@pytest.mark.parametrize(("kind", "outcome"), [("payment_intent.processing", "ignored"),
                                               ("payment_intent.payment_failed", "ignored"),
                                               ("payment_intent.succeeded", "late"),
                                               ("checkout.session.completed", "late")])
def test_a_failed_session_stays_failed_whatever_arrives_next(make_session, deliver, kind, outcome):
    # given a session that failed (its Checkout expired)
    session = make_session()
    deliver(stripe_event(session, "checkout.session.expired"))

    # when a later event arrives
    response = deliver(stripe_event(session, kind))

    # then it changes nothing (a success is kept as a late payment) and the session stays failed
    assert response.json()["outcome"] == outcome
    assert PaymentSession.objects.get(pk=session.pk).status == Status.FAILED


def test_a_pending_session_does_not_go_back_to_pending_or_created(make_session, deliver):
    session = make_session()
    deliver(stripe_event(session, "payment_intent.processing"))

    response = deliver(stripe_event(session, "payment_intent.processing"))

    assert response.json()["outcome"] == "ignored"
    assert PaymentSession.objects.get(pk=session.pk).status == Status.PENDING


@pytest.mark.django_db(transaction=True)
def test_two_threads_can_refresh_sessions_at_once(merchant):
    # given two copies of one session, refreshed over and over from two threads
    import threading

    from django.utils import timezone
    from django_fsm import FSMFieldMixin

    session = PaymentSession.objects.create(account=merchant, amount="5.00", expires_at=timezone.now())
    field = PaymentSession._meta.get_field("status")
    assert isinstance(field, FSMFieldMixin) and field.protected
    errors: list[BaseException] = []
    copies = [PaymentSession.objects.get(pk=session.pk) for _ in range(2)]
    barrier = threading.Barrier(3)

    def refresh(copy):
        barrier.wait()
        try:
            for _ in range(300):
                copy.refresh_from_db(fields=["status"])
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=refresh, args=(c,)) for c in copies]
    for t in threads:
        t.start()
    # and the shared flag is switched the way django-fsm-2 switches it, at the same time
    barrier.wait()
    for _ in range(300):
        field.protected = False
        field.protected = True
    for t in threads:
        t.join()

    # then no refresh trips over the other thread's switch, and the field stays protected
    assert errors == []
    assert field.protected
    with pytest.raises(AttributeError):
        copies[0].status = "paid"
