from django.core.management.base import BaseCommand

from keys_app.models import Account
from keys_app.services import account_update, merchant_create

DEMO_EMAIL = "demo-merchant@example.com"
# The README loop's customer: test mode mails a customer only at an address the merchant lists.
DEMO_TEST_INBOX = "buyer@example.com"


class Command(BaseCommand):
    help = "Create the demo merchant on first run and print its test key (once)."

    def handle(self, *args, **options):
        if Account.objects.filter(email=DEMO_EMAIL).exists():
            self.stdout.write("Demo merchant already exists; its key was printed when it was created.")
            self.stdout.write("Make another merchant and key with: ALLOW_DEBUG=1 .venv/bin/python manage.py create_merchant NAME EMAIL")
            return
        account, issued = merchant_create(name="Demo Merchant", email=DEMO_EMAIL, actor="cli:seed_demo")
        account_update(account=account, actor="cli:seed_demo", test_email_recipients=[DEMO_TEST_INBOX])
        bar = "=" * 72
        self.stdout.write(bar)
        self.stdout.write(f"Demo merchant #{account.pk} created. Its test API key (shown once, save it):")
        self.stdout.write("")
        self.stdout.write(f"    export API_KEY={issued.plaintext}")
        self.stdout.write("")
        self.stdout.write(f"Test mode mails customers only at {DEMO_EMAIL} and {DEMO_TEST_INBOX} "
                          "(test_email_recipients); other customers' mail is printed to the log.")
        self.stdout.write(bar)
