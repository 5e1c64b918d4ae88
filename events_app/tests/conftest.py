"""Fixtures of the webhook tests: a signature-checking receiver, and the workers of invoices_app's tests."""

from __future__ import annotations

import pytest

from events_app.tests.receiver import Receiver
from invoices_app.tests.conftest import broker, smtp_server, worker_env, workers  # noqa: F401 - fixtures
from sessions_app.tests.conftest import make_session, write_path  # noqa: F401 - fixtures


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()
