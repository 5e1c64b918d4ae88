from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify


class Command(BaseCommand):
    help = "Verify the hash chains of the audit log; exits non-zero on a break."

    def add_arguments(self, parser):
        parser.add_argument("--scope", help="Verify one chain only, e.g. account:1 or system.")

    def handle(self, *args, scope=None, **options):
        breaks = audit_verify(scope=scope)
        if breaks:
            for b in breaks:
                self.stderr.write(f"BROKEN {b.scope} seq={b.seq}: {b.reason}")
            raise CommandError(f"audit chain broken in {len(breaks)} place(s)")
        self.stdout.write(self.style.SUCCESS("audit chain intact"))
