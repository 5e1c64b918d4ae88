from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events_app"
    verbose_name = "Events"

    def ready(self) -> None:
        # Imported once the app registry is ready (the tasks import models), so that a web process
        # knows the tasks it queues by name (events_app.handoff).
        from events_app import tasks  # noqa: F401
