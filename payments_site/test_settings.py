"""Settings for the test suite: the real settings with ALLOW_DEBUG on (placeholder secrets allowed).

pytest-django imports the settings before any conftest runs, so the switch has to live here.
"""

import os

os.environ.setdefault("ALLOW_DEBUG", "1")
# pytest-django's live_server binds here (loopback only) rather than to "localhost".
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

from payments_site.settings import *  # noqa: E402,F403
