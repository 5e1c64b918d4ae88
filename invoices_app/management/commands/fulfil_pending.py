from django.core.management.base import BaseCommand

from invoices_app.handoff import fulfilment_safety_net


class Command(BaseCommand):
    help = ("Queue (or, without REDIS_URL, run) fulfilment of paid sessions that are not fulfilled yet: "
            "the safety net that beat runs every minute.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=None,
                            help="seconds since payment (default FULFILMENT_RETRY_AFTER_SECONDS)")

    def handle(self, *args, older_than, **options):
        queued = fulfilment_safety_net(older_than_seconds=older_than)
        self.stdout.write(f"{queued} session(s) queued for fulfilment")
