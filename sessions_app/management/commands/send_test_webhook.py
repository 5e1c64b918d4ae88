import json
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app import selectors
from sessions_app.providers import onecom_provider, stripe_provider

EVENT_TYPES = [
    "payment_intent.succeeded", "payment_intent.processing", "payment_intent.payment_failed",
    "payment_intent.canceled", "checkout.session.completed", "checkout.session.expired",
]
ONECOM_EVENT_TYPES = list(onecom_provider.EVENT_TYPES)


class Command(BaseCommand):
    help = ("Sign a provider-shaped event for a session (Stripe, or One.com with Standard Webhooks) and POST it "
            "to this service's /webhooks/<provider>.")

    def add_arguments(self, parser):
        parser.add_argument("session_id")
        parser.add_argument("--provider", default="stripe", choices=["stripe", "onecom"])
        parser.add_argument("--event", default=None, choices=EVENT_TYPES + ONECOM_EVENT_TYPES,
                            help="default: payment_intent.succeeded (Stripe), payment.succeeded (One.com)")
        parser.add_argument("--url", default=None, help="Webhook URL (default: PUBLIC_BASE_URL/webhooks/<provider>)")

    def handle(self, *args, session_id, provider, event, url, **options):
        session = selectors.session_get_public(session_id=session_id)
        if session is None:
            raise CommandError(f"no session {session_id}")
        if provider == "onecom":
            event = event or "payment.succeeded"
            if event not in ONECOM_EVENT_TYPES:
                raise CommandError(f"One.com events are {', '.join(ONECOM_EVENT_TYPES)}")
            secret = onecom_provider.webhook_secret(session.mode)
            if not secret:
                raise CommandError(f"ONECOM_{session.mode.upper()}_WEBHOOK_SECRET is not set")
            body = onecom_provider.dumps(onecom_provider.test_event(
                session_id=str(session.pk), event_type=event, amount=session.amount, currency=session.currency))
            headers = onecom_provider.sign(body, secret=secret)
        else:
            event = event or "payment_intent.succeeded"
            if event not in EVENT_TYPES:
                raise CommandError(f"Stripe events are {', '.join(EVENT_TYPES)}")
            if not stripe_provider.webhook_secrets(session.mode):
                raise CommandError(f"STRIPE_{session.mode.upper()}_WEBHOOK_SECRET is not set")
            payload = stripe_provider.test_event(session_id=str(session.pk), event_type=event, amount=session.amount,
                                                 currency=session.currency, livemode=session.mode == "live")
            body = json.dumps(payload)
            headers = {"Stripe-Signature": stripe_provider.sign(body)}
        target = url or f"{settings.PUBLIC_BASE_URL}/webhooks/{provider}"
        if not target.startswith(("http://", "https://")):
            raise CommandError("--url must be an http(s) URL")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            target, data=body.encode(), method="POST", headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                self.stdout.write(f"{response.status} {response.read().decode()}")
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{exc.code} {exc.read().decode()}") from None
        except urllib.error.URLError as exc:
            raise CommandError(f"could not reach {target}: {exc.reason}") from None
