# Imported here, first, so that the recursion limit it raises on import (to 100,000) is put back in
# ready() below and no later import can raise it again. See core.safe_json.WEB_RECURSION_LIMIT.
import py_ecc  # noqa: F401, I001
from django.apps import AppConfig

from core.safe_json import recursion_limit_restore


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        recursion_limit_restore()
