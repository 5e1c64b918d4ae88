from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from core import errors
from keys_app.management.commands.merchant_login import write_login
from keys_app.services import merchant_create, merchant_login_create


class Command(BaseCommand):
    help = "Create a merchant account and print its new API key (shown once); optionally a dashboard login."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("email")
        parser.add_argument("--live", action="store_true", help="Issue a live-mode key instead of a test key.")
        parser.add_argument("--with-login", action="store_true",
                            help="Also create a dashboard login (/admin/) scoped to this merchant; "
                                 "prints a one-time password.")
        parser.add_argument("--password-link", action="store_true",
                            help="With --with-login: print a set-password link instead of a password.")

    def handle(self, *args, name, email, live, with_login, password_link, **options):
        name = name.strip()
        if not 0 < len(name) <= 200:
            raise CommandError("the name must have 1 to 200 characters")
        try:
            validate_email(email)
            if len(email) > 254:
                raise ValidationError("too long")
        except ValidationError:
            raise CommandError(f"not a valid email address: {email}") from None
        if password_link and not with_login:
            raise CommandError("--password-link needs --with-login")
        try:
            with transaction.atomic():
                account, issued = merchant_create(name=name, email=email, live=live, actor="cli:create_merchant")
                login = (merchant_login_create(account=account, password_link=password_link,
                                               actor="cli:create_merchant") if with_login else None)
        except (errors.DomainError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Merchant #{account.pk} {account.name} <{account.email}> created.")
        self.stdout.write("API key (shown once, store it now):")
        self.stdout.write(issued.plaintext)
        if login is None:
            return
        self.stdout.write("")
        write_login(self.stdout, login)
