from django.core.management.base import BaseCommand

from keys_app.models import Account
from keys_app.services import merchant_create

DEMO_EMAIL = "demo-merchant@example.com"


class Command(BaseCommand):
    help = "Create the demo merchant on first run and print its test key (once)."

    def handle(self, *args, **options):
        if Account.objects.filter(email=DEMO_EMAIL).exists():
            self.stdout.write("Demo merchant already exists; its key was printed when it was created.")
            self.stdout.write("Make another merchant and key with: ALLOW_DEBUG=1 .venv/bin/python manage.py create_merchant NAME EMAIL")
            return
        account, issued = merchant_create(name="Demo Merchant", email=DEMO_EMAIL, actor="cli:seed_demo")
        bar = "=" * 72
        self.stdout.write(bar)
        self.stdout.write(f"Demo merchant #{account.pk} created. Its test API key (shown once, save it):")
        self.stdout.write("")
        self.stdout.write(f"    export API_KEY={issued.plaintext}")
        self.stdout.write("")
        self.stdout.write(bar)
