from django.core.management.base import BaseCommand, CommandError

from core import errors
from keys_app.models import Account
from keys_app.services import merchant_login_create


class Command(BaseCommand):
    help = "Give an existing merchant a dashboard login (/admin/) scoped to its own account."

    def add_arguments(self, parser):
        parser.add_argument("merchant", help="The merchant's id or email.")
        parser.add_argument("--password-link", action="store_true",
                            help="Print a set-password link instead of a one-time password.")

    def handle(self, *args, merchant, password_link, **options):
        accounts = Account.objects.all()
        found = (accounts.filter(pk=int(merchant)) if merchant.isdigit()
                 else accounts.filter(email__iexact=merchant)).order_by("pk")
        if found.count() != 1:
            raise CommandError(f"expected one merchant matching {merchant!r}, found {found.count()}")
        try:
            login = merchant_login_create(account=found.get(), password_link=password_link,
                                          actor="cli:merchant_login")
        except (errors.DomainError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        write_login(self.stdout, login)


def write_login(out, login) -> None:
    """Print a new dashboard login: the username, then its one-time password or set-password link."""
    out.write(f"Dashboard login: /admin/  username: {login.user.username}")
    if login.password:
        out.write("Password (shown once, change it after signing in):")
        out.write(login.password)
    else:
        out.write("Set a password here (the link works once):")
        out.write(login.set_password_url)
