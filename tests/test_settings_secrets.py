"""Without ALLOW_DEBUG the settings refuse to start with a missing or placeholder secret, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG = "k3y-" + "x7Qp" * 12


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with a clean environment."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": str(tmp_path),
             "DJANGO_SETTINGS_MODULE": "payments_site.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(("env", "variable"), [
    ({}, "DJANGO_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": "changeme"}, "DJANGO_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": "dev-insecure-django-secret-key-change-me-0123456789"}, "DJANGO_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": STRONG}, "JWT_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": STRONG, "JWT_SECRET_KEY": "devsecret"}, "JWT_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": STRONG, "JWT_SECRET_KEY": "short"}, "JWT_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG, "ALLOW_DEBUG": "0"}, "ALLOWED_HOSTS"),
    ({"DJANGO_SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG, "ALLOWED_HOSTS": "pay.example.com",
      "STRIPE_WEBHOOK_SECRET": "whsec_real_one,changeme"}, "STRIPE_WEBHOOK_SECRET"),
])
def test_it_refuses_to_start_naming_the_variable(tmp_path, env, variable):
    result = _start(tmp_path, **env)

    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "ImproperlyConfigured" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert variable in last_line, result.stderr


def test_it_starts_with_real_secrets(tmp_path):
    result = _start(tmp_path, DJANGO_SECRET_KEY=STRONG, JWT_SECRET_KEY=STRONG, ALLOWED_HOSTS="pay.example.com")

    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_it_starts_with_placeholders_when_allow_debug_is_set(tmp_path):
    result = _start(tmp_path, ALLOW_DEBUG="1", JWT_SECRET_KEY="devsecret")

    assert result.returncode == 0, result.stderr


def test_a_bad_boolean_is_named_too(tmp_path):
    result = _start(tmp_path, ALLOW_DEBUG="maybe")

    assert result.returncode != 0
    assert "ALLOW_DEBUG" in result.stderr.strip().splitlines()[-1]
