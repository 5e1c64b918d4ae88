from django.apps import AppConfig


class KeysAppConfig(AppConfig):
    name = "keys_app"
    verbose_name = "Accounts and API keys"

    def ready(self) -> None:
        # Imported once the app registry is ready: the receivers import models.
        from keys_app import receivers  # noqa: F401 - connects the cache invalidation
