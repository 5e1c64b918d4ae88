"""The soak (bench/soak.py) at CI size: 60 sessions, every event shuffled and repeated, the worker
SIGKILLed halfway. Every session paid once, fulfilled once, nothing lost, nothing doubled.

It runs as its own process, as `make soak` does: the service's processes need a database of
their own (created and dropped by the soak), not the test database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = 60
# Bounds, not expectations: a passing run takes about 20 s; the soak's own wait for fulfilment
# is what a failing run spends.
WAIT_S = 40
TIMEOUT_S = 240


@pytest.mark.integration
def test_soak_at_ci_size_loses_and_doubles_nothing(tmp_path):
    output = tmp_path / "soak.json"
    # The suite's DATABASE_URL and REDIS_TEST_URL name the servers; the soak takes its own
    # database (one per run, so two checkouts may test at once) and its own Redis database.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    argv = [sys.executable, "bench/soak.py", "--sessions", str(SESSIONS), "--wait", str(WAIT_S),
            "--database-name", f"payments_soak_ci_{os.getpid()}", "--drop-database", "--output", str(output)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the soak stop the server and workers it started; SIGKILL would orphan them.
        proc.send_signal(signal.SIGTERM)
        printed, _ = proc.communicate(timeout=60)
        pytest.fail(f"the soak did not finish in {TIMEOUT_S} s:\n{printed[-6000:]}")

    assert proc.returncode == 0, f"the soak failed (exit {proc.returncode}):\n{printed[-6000:]}"
    result = json.loads(output.read_text())
    assert result["ok"] and all(check["ok"] for check in result["checks"]), printed[-6000:]
    figures = result["figures"]
    assert figures["statuses"] == {"paid": SESSIONS}
    # One of each per session, plus at most one copy per run the kill interrupted after the SMTP
    # server took a message and before the send was recorded (the soak checks where each came from).
    assert figures["fulfilled"] == SESSIONS
    assert figures["receipts"] - figures["receipts_resent_by_killed_runs"] == SESSIONS
    assert figures["merchant_emails"] - figures["merchant_emails_resent_by_killed_runs"] == SESSIONS
    assert figures["receipts_resent_by_killed_runs"] <= figures["in_progress_at_kill"]
    assert figures["restart_to_last_fulfilment_s"] is not None
