"""A revoke is seen by every worker: another process, sharing the Redis cache, refuses the key
within a second, although it had the key cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from invoices_app.tests.conftest import REDIS_TEST_URL, database_url

BASE_DIR = Path(__file__).resolve().parents[2]

# The other worker: verifies the key through the whole Django stack in a loop and reports each
# answer, with when it came and how many SQL queries it took.
WORKER = r"""
import json, sys, time, django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client(HTTP_X_API_KEY=sys.argv[1])
deadline = time.time() + 30
while time.time() < deadline:
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/keys/verify", json.dumps({"key": sys.argv[2]}), content_type="application/json")
    code = response.json()["code"]
    print(json.dumps({"code": code, "at": time.time(), "queries": len(queries)}), flush=True)
    if code == "revoked":
        break
    time.sleep(0.02)
"""


@pytest.fixture
def redis_cache(settings):
    """This test process on the shared Redis cache, as every web worker is in production."""
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": REDIS_TEST_URL}}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_revoke_is_seen_by_another_worker_within_a_second(merchant, redis_cache, tmp_path):
    from keys_app.entitlements import entitlement_key_issue, entitlement_key_revoke

    issued = entitlement_key_issue(account=merchant, session_id=uuid.uuid4(), customer_email="b@example.com",
                                   actor="test")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
    env.update({"ALLOW_DEBUG": "1", "DATABASE_URL": database_url(), "REDIS_URL": REDIS_TEST_URL,
                "DJANGO_SETTINGS_MODULE": "payments_site.settings", "ALLOWED_HOSTS": "testserver",
                "DATA_DIR": str(tmp_path)})
    worker = subprocess.Popen([sys.executable, "-c", WORKER, merchant.plaintext_key, issued.plaintext], cwd=BASE_DIR,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    def answer() -> dict:
        line = worker.stdout.readline()
        assert line, worker.stderr.read()
        return json.loads(line)

    try:
        # given the other worker has the key verified and cached (a verification without a query)
        assert answer()["code"] == "valid"
        assert answer() == {"code": "valid", "at": pytest.approx(time.time(), abs=5), "queries": 0}

        # when this process revokes it
        entitlement_key_revoke(key=issued.key, actor="test")
        revoked_at = time.time()

        # then the other worker, which answered valid until then, answers revoked within a second
        while (seen := answer())["code"] == "valid":
            assert seen["at"] < revoked_at + 1.0
        assert seen["code"] == "revoked"
        assert seen["at"] - revoked_at < 1.0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)
