import json

from sessions_app.models import PaymentSession, Status
from sessions_app.providers import stripe_provider


def test_the_loop_creates_a_session_pays_it_and_reports_it_paid(api, anon, client):
    # given a session created over the API
    created = api.post("/create_session", {"amount": "99.99", "description": "Pro plan"}, format="json")
    assert created.status_code == 201, created.content
    session_id = created.json()["session_id"]
    assert created.json()["url"] == created.json()["checkout_url"]

    # when Stripe reports it succeeded, signed
    event = stripe_provider.test_event(session_id=session_id, event_type="payment_intent.succeeded",
                                       amount=PaymentSession.objects.get(pk=session_id).amount, currency="EUR")
    body = json.dumps(event)
    response = client.post("/webhooks/stripe", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))

    # then it is paid, publicly visible, and a replay changes nothing
    assert response.status_code == 200, response.content
    assert anon.get(f"/session/{session_id}/status").json()["status"] == Status.PAID
    replay = client.post("/webhooks/stripe", body, content_type="application/json",
                         HTTP_STRIPE_SIGNATURE=stripe_provider.sign(body))
    assert replay.json()["outcome"] == "duplicate"
