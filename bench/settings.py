"""Settings for `make bench`: the product's settings, plus the baseline views.

The baselines are served by the very same process and middleware as the product; only the
URLconf and one extra app (the table the minimal insert/read views use) are added here, so the
product's own URLs never contain them.
"""

from payments_site.settings import *  # noqa: F403
from payments_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.baseline_app"]
ROOT_URLCONF = "bench.urls"
