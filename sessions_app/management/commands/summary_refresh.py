"""Bring the dashboard's daily summary up to date now (beat does it every minute), or rebuild it."""

from django.core.management.base import BaseCommand

from sessions_app.summaries import summary_rebuild, summary_refresh


class Command(BaseCommand):
    help = "Bring the daily summary up to date; --rebuild forgets it and builds it from every session."

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true")

    def handle(self, *args, rebuild: bool = False, **options):
        run = summary_rebuild() if rebuild else summary_refresh()
        self.stdout.write(f"summary up to {run.paid_until.isoformat()} (paid), {run.created_until.isoformat()} "
                          f"(created); {run.rows} rows written")
