import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")
application = get_wsgi_application()

from core.safe_json import recursion_limit_restore  # noqa: E402
from payments_site.warmup import warm  # noqa: E402

warm()
# A library imported by warm() may have raised it: a web worker runs with Python's default.
recursion_limit_restore()
