import json
import uuid
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from audit.models import AuditEvent
from sessions_app.models import PaymentSession, WebhookEvent
from sessions_app.providers import stripe_provider
from sessions_app.signals import session_paid

DELIVERIES = "/admin/sessions_app/webhookevent/"


def _deliver(client, event: dict):
    body = json.dumps(event)
    return client.post("/webhooks/stripe", body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body)).json()


def _paid_signals():
    received = []

    def listener(sender, session_id, **kwargs):
        received.append(session_id)

    session_paid.connect(listener, weak=False)
    return received, listener


def test_reprocessing_an_unmatched_delivery_pays_its_session_once(staff_client, client, merchant,
                                                                 django_capture_on_commit_callbacks):
    # given a payment event that arrived before its session existed (stored as unmatched)
    session_id = uuid.uuid4()
    event = stripe_provider.test_event(session_id=str(session_id), event_type="payment_intent.succeeded",
                                       amount=Decimal("25.00"), currency="EUR")
    assert _deliver(client, event)["outcome"] == "unmatched"
    stored = WebhookEvent.objects.get(event_id=event["id"])
    now = timezone.now()
    PaymentSession.objects.create(id=session_id, account=merchant, amount=Decimal("25.00"), currency="EUR",
                                  expires_at=now + timedelta(hours=1))
    received, listener = _paid_signals()
    try:
        # when staff reprocess it, twice
        with django_capture_on_commit_callbacks(execute=True):
            staff_client.post(DELIVERIES, {"action": "reprocess", "_selected_action": [stored.pk]})
        with django_capture_on_commit_callbacks(execute=True):
            staff_client.post(DELIVERIES, {"action": "reprocess", "_selected_action": [stored.pk]})
    finally:
        session_paid.disconnect(listener)

    # then the session is paid once, the delivery is processed and linked, nothing is duplicated
    assert PaymentSession.objects.get(pk=session_id).status == "paid"
    stored.refresh_from_db()
    assert (stored.outcome, stored.session_id, stored.account_id) == ("processed", session_id, merchant.pk)
    assert received == [session_id]
    assert WebhookEvent.objects.filter(event_id=event["id"]).count() == 1
    assert AuditEvent.objects.filter(action="session.paid", subject_id=str(session_id)).count() == 1
    assert AuditEvent.objects.filter(action="webhook.reprocessed").count() == 1
    # and the provider's own retry of the same event is still a duplicate
    assert _deliver(client, event)["outcome"] == "duplicate"


def test_reprocessing_a_processed_delivery_changes_nothing(merchant_client, client, merchant, api):
    # given a session paid by a delivery
    created = api.post("/create_session", {"amount": "9.99"}, format="json").json()
    event = stripe_provider.test_event(session_id=created["session_id"], event_type="payment_intent.succeeded",
                                       amount=Decimal("9.99"), currency="EUR")
    assert _deliver(client, event)["outcome"] == "processed"
    stored = WebhookEvent.objects.get(event_id=event["id"])
    audit_rows = AuditEvent.objects.count()

    # when the merchant reprocesses it
    response = merchant_client.post(DELIVERIES, {"action": "reprocess", "_selected_action": [stored.pk]},
                                    follow=True)

    # then it is left as it was
    assert "0 reprocessed, 1 left as they were" in response.content.decode()
    stored.refresh_from_db()
    assert stored.outcome == "processed"
    assert AuditEvent.objects.count() == audit_rows


def test_reprocessing_a_failed_delivery_whose_session_is_already_paid_is_ignored(staff_client, client, merchant, api):
    # given a session paid by one event, and a second event for it stored as failed
    created = api.post("/create_session", {"amount": "5.00"}, format="json").json()
    first = stripe_provider.test_event(session_id=created["session_id"], event_type="payment_intent.succeeded",
                                       amount=Decimal("5.00"), currency="EUR")
    _deliver(client, first)
    second = stripe_provider.test_event(session_id=created["session_id"], event_type="payment_intent.succeeded",
                                        amount=Decimal("5.00"), currency="EUR")
    failed = WebhookEvent.objects.create(provider="stripe", event_id=second["id"], event_type=second["type"],
                                         payload=second, outcome="failed", error="worker crashed")

    # when it is reprocessed
    staff_client.post(DELIVERIES, {"action": "reprocess", "_selected_action": [failed.pk]})

    # then the state machine refuses a second payment
    failed.refresh_from_db()
    assert failed.outcome == "ignored" and "already paid" in failed.error
    assert AuditEvent.objects.filter(action="session.paid", subject_id=created["session_id"]).count() == 1


def test_a_delivery_page_shows_the_raw_payload(merchant_client, client, api):
    created = api.post("/create_session", {"amount": "5.00"}, format="json").json()
    event = stripe_provider.test_event(session_id=created["session_id"], event_type="payment_intent.succeeded",
                                       amount=Decimal("5.00"), currency="EUR")
    _deliver(client, event)
    stored = WebhookEvent.objects.get(event_id=event["id"])

    html = merchant_client.get(f"{DELIVERIES}{stored.pk}/change/").content.decode()

    assert event["data"]["object"]["id"] in html
    assert "amount_received" in html


def test_the_session_page_shows_its_timeline_and_deliveries_and_no_way_to_edit_status(merchant_client, client, api):
    created = api.post("/create_session", {"amount": "5.00"}, format="json").json()
    event = stripe_provider.test_event(session_id=created["session_id"], event_type="payment_intent.succeeded",
                                       amount=Decimal("5.00"), currency="EUR")
    _deliver(client, event)

    page = merchant_client.get(f"/admin/sessions_app/paymentsession/{created['session_id']}/change/")
    html = page.content.decode()

    assert 'data-action="session.created"' in html and 'data-action="session.paid"' in html
    assert event["id"] in html
    assert 'name="status"' not in html
    post = merchant_client.post(f"/admin/sessions_app/paymentsession/{created['session_id']}/change/",
                                {"status": "failed"})
    assert post.status_code == 403
    assert PaymentSession.objects.get(pk=created["session_id"]).status == "paid"


def test_the_verify_action_reports_a_tampered_audit_row(merchant_client, merchant):
    from django.db import connection

    # given the merchant's chain, with one row altered behind the application's back
    row = AuditEvent.objects.filter(account_id=merchant.pk).order_by("seq").first()
    intact = merchant_client.post("/admin/audit/auditevent/", {"action": "verify_chain",
                                                               "_selected_action": [row.pk]}, follow=True)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = 'someone else' WHERE id = %s", [row.pk])

    # when the merchant verifies it
    broken = merchant_client.post("/admin/audit/auditevent/", {"action": "verify_chain",
                                                               "_selected_action": [row.pk]}, follow=True)

    # then the break is reported with its place
    assert "Chain intact" in intact.content.decode()
    assert f"Chain account:{merchant.pk} broken at seq {row.seq}: row content was altered" in broken.content.decode()


def test_audit_rows_cannot_be_changed_or_deleted_in_the_dashboard(staff_client, merchant):
    row = AuditEvent.objects.filter(account_id=merchant.pk).first()

    assert staff_client.post(f"/admin/audit/auditevent/{row.pk}/change/", {"actor": "x"}).status_code == 403
    assert staff_client.post(f"/admin/audit/auditevent/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=row.pk).actor == row.actor
