import json
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app import selectors
from sessions_app.providers import stripe_provider

EVENT_TYPES = [
    "payment_intent.succeeded", "payment_intent.processing", "payment_intent.payment_failed",
    "checkout.session.completed", "checkout.session.expired",
]


class Command(BaseCommand):
    help = "Sign a Stripe-shaped event for a session and POST it to this service's /webhooks/stripe."

    def add_arguments(self, parser):
        parser.add_argument("session_id")
        parser.add_argument("--event", default="payment_intent.succeeded", choices=EVENT_TYPES)
        parser.add_argument("--url", default=None, help="Webhook URL (default: PUBLIC_BASE_URL/webhooks/stripe)")

    def handle(self, *args, session_id, event, url, **options):
        session = selectors.session_get_public(session_id=session_id)
        if session is None:
            raise CommandError(f"no session {session_id}")
        if not settings.STRIPE_WEBHOOK_SECRETS:
            raise CommandError("STRIPE_WEBHOOK_SECRET is not set")
        payload = stripe_provider.test_event(session_id=str(session.pk), event_type=event, amount=session.amount,
                                             currency=session.currency, livemode=session.mode == "live")
        body = json.dumps(payload)
        target = url or f"{settings.PUBLIC_BASE_URL}/webhooks/stripe"
        if not target.startswith(("http://", "https://")):
            raise CommandError("--url must be an http(s) URL")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            target, data=body.encode(), method="POST", headers={
            "Content-Type": "application/json", "Stripe-Signature": stripe_provider.sign(body)})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                self.stdout.write(f"{response.status} {response.read().decode()}")
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{exc.code} {exc.read().decode()}") from None
        except urllib.error.URLError as exc:
            raise CommandError(f"could not reach {target}: {exc.reason}") from None
