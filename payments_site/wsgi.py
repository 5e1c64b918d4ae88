import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "payments_site.settings")
application = get_wsgi_application()

from payments_site.warmup import warm  # noqa: E402

warm()
