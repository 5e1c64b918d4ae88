"""The settings read a credential per mode, refuse one that contradicts its mode, and refuse
every development secret and weak webhook secret in production."""

from __future__ import annotations

import json
import secrets

import pytest

from payments_site.settings import secret_entropy_bits
from tests.test_settings_secrets import STRONG, _start

PRODUCTION = {"DJANGO_SECRET_KEY": STRONG, "JWT_SECRET_KEY": STRONG, "ALLOWED_HOSTS": "pay.example.com"}
SHOW = ("import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({n: getattr(s, n) "
        "for n in ('STRIPE_TEST_SECRET_KEY', 'STRIPE_LIVE_SECRET_KEY', 'STRIPE_TEST_WEBHOOK_SECRETS', "
        "'STRIPE_LIVE_WEBHOOK_SECRETS', 'ONECOM_TEST_CHECKOUT_URL', 'ONECOM_LIVE_CHECKOUT_URL', "
        "'ONECOM_TEST_WEBHOOK_SECRET', 'ONECOM_LIVE_WEBHOOK_SECRET', 'WEB3_TEST_PROVIDER_URL', 'WEB3_TEST_CHAIN_ID', "
        "'WEB3_LIVE_PROVIDER_URL', 'WEB3_LIVE_CHAIN_ID')}))")
WHSEC_A, WHSEC_B = "whsec_" + secrets.token_hex(32), "whsec_" + secrets.token_hex(32)
ONECOM_A = "whsec_" + "QUFBQUFBQUFCQkJCQkJCQkNDQ0NDQ0NDRERERERERERFRUVFRUVFRUZGRkZGRkZG"


def _settings(tmp_path, **env) -> dict:
    import os
    import subprocess
    import sys

    from tests.test_settings_secrets import ROOT

    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA_DIR": str(tmp_path),
             "DJANGO_SETTINGS_MODULE": "payments_site.settings", **PRODUCTION, **env}
    result = subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env=clean, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _refused(tmp_path, variable: str, **env) -> None:
    result = _start(tmp_path, **{**PRODUCTION, **env})
    assert result.returncode != 0, f"started with {env}"
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and variable in last_line, result.stderr


def test_the_single_mode_names_fill_both_modes_and_a_stripe_key_only_its_own(tmp_path):
    shown = _settings(tmp_path, STRIPE_SECRET_KEY="sk_live_" + "L" * 24, STRIPE_WEBHOOK_SECRET=WHSEC_A,
                      ONECOM_CHECKOUT_URL="https://pay.one.test/p", ONECOM_WEBHOOK_SECRET=ONECOM_A,
                      WEB3_PROVIDER_URL="https://rpc.example.net", WEB3_CHAIN_ID="11155111")

    assert (shown["STRIPE_TEST_SECRET_KEY"], shown["STRIPE_LIVE_SECRET_KEY"]) == ("", "sk_live_" + "L" * 24)
    assert shown["STRIPE_TEST_WEBHOOK_SECRETS"] == shown["STRIPE_LIVE_WEBHOOK_SECRETS"] == [WHSEC_A]
    assert shown["ONECOM_TEST_CHECKOUT_URL"] == shown["ONECOM_LIVE_CHECKOUT_URL"] == "https://pay.one.test/p"
    assert shown["ONECOM_TEST_WEBHOOK_SECRET"] == shown["ONECOM_LIVE_WEBHOOK_SECRET"] == ONECOM_A
    assert shown["WEB3_TEST_PROVIDER_URL"] == shown["WEB3_LIVE_PROVIDER_URL"] == "https://rpc.example.net"
    assert shown["WEB3_TEST_CHAIN_ID"] == shown["WEB3_LIVE_CHAIN_ID"] == 11155111


def test_a_per_mode_name_wins_over_its_fallback(tmp_path):
    shown = _settings(tmp_path, STRIPE_SECRET_KEY="sk_test_" + "A" * 24, STRIPE_TEST_SECRET_KEY="sk_test_" + "B" * 24,
                      STRIPE_WEBHOOK_SECRET=WHSEC_A, STRIPE_LIVE_WEBHOOK_SECRET=WHSEC_B,
                      WEB3_PROVIDER_URL="https://rpc.example.net", WEB3_CHAIN_ID="1",
                      WEB3_TEST_PROVIDER_URL="http://127.0.0.1:8545", WEB3_TEST_CHAIN_ID="31337")

    assert (shown["STRIPE_TEST_SECRET_KEY"], shown["STRIPE_LIVE_SECRET_KEY"]) == ("sk_test_" + "B" * 24, "")
    assert (shown["STRIPE_TEST_WEBHOOK_SECRETS"], shown["STRIPE_LIVE_WEBHOOK_SECRETS"]) == ([WHSEC_A], [WHSEC_B])
    assert (shown["WEB3_TEST_PROVIDER_URL"], shown["WEB3_TEST_CHAIN_ID"]) == ("http://127.0.0.1:8545", 31337)
    assert (shown["WEB3_LIVE_PROVIDER_URL"], shown["WEB3_LIVE_CHAIN_ID"]) == ("https://rpc.example.net", 1)


def test_mainnet_is_never_a_test_chain_even_through_the_fallback(tmp_path):
    shown = _settings(tmp_path, WEB3_PROVIDER_URL="https://rpc.example.net", WEB3_CHAIN_ID="1")

    assert (shown["WEB3_TEST_CHAIN_ID"], shown["WEB3_TEST_PROVIDER_URL"]) == (0, "")
    assert shown["WEB3_LIVE_CHAIN_ID"] == 1


@pytest.mark.parametrize(("variable", "env"), [
    ("STRIPE_TEST_SECRET_KEY", {"STRIPE_TEST_SECRET_KEY": "sk_live_" + "x" * 24}),
    ("STRIPE_LIVE_SECRET_KEY", {"STRIPE_LIVE_SECRET_KEY": "sk_test_" + "x" * 24}),
    ("STRIPE_LIVE_SECRET_KEY", {"STRIPE_LIVE_SECRET_KEY": "pk_live_" + "x" * 24}),
    ("STRIPE_SECRET_KEY", {"STRIPE_SECRET_KEY": "pk_live_" + "x" * 24}),
    ("WEB3_LIVE_CHAIN_ID", {"WEB3_LIVE_CHAIN_ID": "31337"}),
    ("WEB3_TEST_CHAIN_ID", {"WEB3_TEST_CHAIN_ID": "1"}),
    ("WEB3_TEST_PROVIDER_URL", {"WEB3_TEST_PROVIDER_URL": "http://node.example.net:8545", "WEB3_TEST_CHAIN_ID": "5"}),
    ("WEB3_PROVIDER_URL", {"WEB3_PROVIDER_URL": "http://127.0.0.1.example.net/rpc"}),
], ids=["live-key-as-test", "test-key-as-live", "publishable-key", "fallback-prefix", "live-local-chain",
        "test-mainnet", "remote-http-node", "fallback-http-lookalike"])
def test_a_credential_that_contradicts_its_mode_is_refused_naming_it(tmp_path, variable, env):
    _refused(tmp_path, variable, **env)


# Every development secret the code, its docs or its tests publish, under every name it could be given.
DEV_SECRETS = [
    ("DJANGO_SECRET_KEY", "dev-insecure-django-secret-key-change-me-0123456789"),
    ("JWT_SECRET_KEY", "devsecret-for-local-runs-only-never-in-production"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_dev_insecure_local_stripe_secret"),
    ("STRIPE_TEST_WEBHOOK_SECRET", "whsec_dev_insecure_local_stripe_secret"),
    ("STRIPE_LIVE_WEBHOOK_SECRET", "whsec_localstripe_e2e_secret"),
    ("STRIPE_SECRET_KEY", "sk_test_localstripe0123456789abcdef"),
    ("ONECOM_WEBHOOK_SECRET", "whsec_ZGV2LWluc2VjdXJlLW9uZWNvbS1zZWNyZXQtMDEyMzQ1"),
    ("ONECOM_TEST_WEBHOOK_SECRET", "whsec_ZGV2LWluc2VjdXJlLW9uZWNvbS1zZWNyZXQtMDEyMzQ1"),
    ("ONECOM_LIVE_WEBHOOK_SECRET", "whsec_ZGV2LWluc2VjdXJlLW9uZWNvbS1zZWNyZXQtMDEyMzQ1"),
    ("WEB3_WEBHOOK_SECRET", "dev-insecure-web3-webhook-secret"),
]


@pytest.mark.parametrize(("variable", "value"), DEV_SECRETS, ids=[v for v, _ in DEV_SECRETS])
def test_every_development_secret_is_refused_without_allow_debug(tmp_path, variable, value):
    base = {**PRODUCTION, variable: value}
    if variable in PRODUCTION:
        _refused(tmp_path, variable, **base)
    else:
        _refused(tmp_path, variable, **{variable: value})


@pytest.mark.parametrize(("variable", "value"), [
    ("STRIPE_WEBHOOK_SECRET", "whsec_" + "3f9a0c7e1b5d2468" * 2),  # 32 hex digits: 16 bytes
    ("STRIPE_LIVE_WEBHOOK_SECRET", "whsec_" + "ab" * 40),
    ("ONECOM_LIVE_WEBHOOK_SECRET", "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZg=="),
    ("WEB3_WEBHOOK_SECRET", "9c1d4e7f2a6b3c8d0e5f" * 2),
], ids=["stripe-16-bytes", "stripe-repeated", "onecom-16-bytes", "web3-20-bytes"])
def test_a_webhook_secret_under_32_bytes_of_entropy_is_refused(tmp_path, variable, value):
    _refused(tmp_path, variable, **{variable: value})


def test_a_signing_secret_as_stripe_issues_it_starts(tmp_path):
    # Stripe's dashboard secrets are whsec_ + 32 letters and digits: Stripe's choice, not the operator's
    issued = "whsec_" + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                                for _ in range(32))
    assert _start(tmp_path, **PRODUCTION, STRIPE_LIVE_WEBHOOK_SECRET=issued).returncode == 0
    # while a secret of that length the operator makes for One.com or Web3 must carry 256 bits
    _refused(tmp_path, "WEB3_WEBHOOK_SECRET", WEB3_WEBHOOK_SECRET=issued.removeprefix("whsec_"))


def test_strong_per_mode_secrets_start(tmp_path):
    result = _start(tmp_path, **PRODUCTION, STRIPE_TEST_WEBHOOK_SECRET=WHSEC_A, STRIPE_LIVE_WEBHOOK_SECRET=WHSEC_B,
                    STRIPE_TEST_SECRET_KEY="sk_test_" + "A" * 24, STRIPE_LIVE_SECRET_KEY="rk_live_" + "B" * 24,
                    ONECOM_TEST_WEBHOOK_SECRET=ONECOM_A, WEB3_WEBHOOK_SECRET=secrets.token_urlsafe(43))
    assert result.returncode == 0, result.stderr


def test_allow_debug_refuses_to_answer_to_a_public_host_name(tmp_path):
    result = _start(tmp_path, ALLOW_DEBUG="1", ALLOWED_HOSTS="127.0.0.1,pay.example.com")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr.strip().splitlines()[-1]


def test_the_entropy_estimate():
    assert secret_entropy_bits("whsec_" + secrets.token_hex(32)) >= 256
    assert secret_entropy_bits(secrets.token_urlsafe(43)) >= 256
    assert secret_entropy_bits("whsec_" + "QUJD" * 11) < 256  # 32 bytes decoded, but "ABC" repeated
    assert secret_entropy_bits("a" * 200) == 0


def _production_block() -> str:
    from tests.test_settings_secrets import ROOT

    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = text.split("## The production environment", 1)[1]
    return section.split("```sh", 1)[1].split("```", 1)[0]


def _filled(name: str, value: str) -> str:
    """The documented value with its `<…>` placeholder replaced by a real-looking one of its kind."""
    import base64
    import re

    if "<" not in value:
        return value
    if name.startswith("STRIPE_") and name.endswith("_SECRET_KEY"):
        fill = ("sk_test_" if "TEST" in name else "rk_live_") + secrets.token_hex(16)
    elif name.startswith("ONECOM_"):
        fill = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    elif name.startswith("STRIPE_"):
        fill = "whsec_" + secrets.token_hex(32)
    else:
        fill = secrets.token_urlsafe(48)
    return re.sub(r"<[^>]*>", fill, value)


def test_the_documented_production_environment_names_every_variable_and_starts(tmp_path):
    from tests.test_docs import documented_variables

    block = _production_block()
    # every variable of configuration.md is in it
    missing = {name for name in documented_variables() if name not in block}
    assert not missing, f"add these to docs/deployment.md's production environment: {sorted(missing)}"
    # and the settings start with exactly what it sets, placeholders filled in
    env = {}
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        value = value.split("  #", 1)[0].strip()
        env[name] = _filled(name, value)
    assert "ALLOW_DEBUG" not in env
    env["DATA_DIR"] = str(tmp_path)
    result = _start(tmp_path, **env)
    assert result.returncode == 0, result.stderr
