from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from keys_app.services import merchant_create


class Command(BaseCommand):
    help = "Create a merchant account and print its new API key (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("email")
        parser.add_argument("--live", action="store_true", help="Issue a live-mode key instead of a test key.")

    def handle(self, *args, name, email, live, **options):
        name = name.strip()
        if not 0 < len(name) <= 200:
            raise CommandError("the name must have 1 to 200 characters")
        try:
            validate_email(email)
            if len(email) > 254:
                raise ValidationError("too long")
        except ValidationError:
            raise CommandError(f"not a valid email address: {email}") from None
        account, issued = merchant_create(name=name, email=email, live=live, actor="cli:create_merchant")
        self.stdout.write(f"Merchant #{account.pk} {account.name} <{account.email}> created.")
        self.stdout.write("API key (shown once, store it now):")
        self.stdout.write(issued.plaintext)
