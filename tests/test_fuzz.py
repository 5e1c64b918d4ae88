"""Property-based fuzzing of every documented operation with schemathesis, in-process (WSGI).

Each operation gets a bounded number of generated requests, valid and invalid. None may answer
5xx, and every answer must match the schema: documented status code, content type, body and
headers. `bench/fuzz_long.py` runs the same checks with many more examples.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from core.parsers import unstorable_text
from payments_site.wsgi import application
from sessions_app.providers import onecom_provider, stripe_provider, web3_provider

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
# `--checks all`: the above, and schema-invalid input refused, schema-valid input accepted, auth
# enforced, deleted resources gone, unsupported methods refused.
ALL_CHECKS = [*CHECKS, negative_data_rejection, positive_data_acceptance, ignored_auth, missing_required_header,
              unsupported_method, use_after_free, ensure_resource_availability]
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "15"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
# CI replays the same examples every run; the long campaign (bench/fuzz_long.py) explores new ones.
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") != "1"
# Fuzzing is many requests from one address: lift the abuse limits, they have their own tests.
UNLIMITED = {scope: "100000/min" for scope in (
    "create_session_key", "create_session_ip", "api_key", "api_ip", "status_session", "status_ip", "checkout_ip",
    "checkout_session", "verify_key", "access_links_ip", "access_links_address", "pay_link_ip", "pay_link")}



def _onecom_headers(body: str, environ) -> dict[str, str]:
    # Only a request carrying all three headers is re-signed: one the fuzzer sent without the id or
    # the timestamp must reach the server without them. The generated webhook-id stays: it is the
    # event id the receiver stores.
    if not (environ.get("HTTP_WEBHOOK_ID") and environ.get("HTTP_WEBHOOK_TIMESTAMP")):
        return {}
    signed = onecom_provider.sign(body, msg_id=environ["HTTP_WEBHOOK_ID"])
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in signed.items()}


# Path -> (the signature header as WSGI names it, what re-signs a body).
SIGNERS = {
    "/webhooks/stripe": ("HTTP_STRIPE_SIGNATURE",
                         lambda body, environ: {"HTTP_STRIPE_SIGNATURE": stripe_provider.sign(body)}),
    "/webhooks/onecom": ("HTTP_WEBHOOK_SIGNATURE", _onecom_headers),
    "/webhooks/web3": ("HTTP_WEB3_SIGNATURE",
                       lambda body, environ: {"HTTP_WEB3_SIGNATURE": web3_provider.sign(body)}),
}


def _resign(environ) -> None:
    header, sign = SIGNERS.get(environ.get("PATH_INFO"), (None, None))
    # A missing or empty signature header stays so: the server must answer signature_missing.
    if header is None or not environ.get(header):
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        environ.update(sign(body.decode("utf-8"), environ))
    except UnicodeDecodeError:
        pass


def signing_app(environ, start_response):
    """Providers sign what they send: re-sign each generated webhook body that carries a signature
    header, so the fuzzer reaches past verification into parsing and storage. (A missing header
    stays missing; unsigned and badly signed bodies have their own tests.)"""
    _resign(environ)
    return application(environ, start_response)


# The repository's schemathesis.toml: which operations may refuse a schema-valid request, and why.
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/", signing_app, config=SchemathesisConfig.from_path(Path(__file__).resolve().parents[1] /
                                                                      "schemathesis.toml"))



@schema.hook("filter_body")
def storable_text_only(context, body) -> bool:
    """No JSON body may hold NUL or a lone surrogate in any string, property names included: PostgreSQL
    cannot store them, and every body with one is `400` (tests/test_abuse_limits.py pins it). OpenAPI
    3.0 cannot state a rule over every string and key, so generated bodies keep to it."""
    return not unstorable_text(body)


@pytest.fixture
def in_test_transaction():
    """Requests go through the real WSGI handler; keep it from closing the test's connection,
    as Django's own test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def unthrottled(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": UNLIMITED}


@pytest.mark.integration
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_off_schema(case, merchant, unthrottled, in_test_transaction):
    # given a generated request, sent with a valid key when the operation needs one
    # when it is sent / then the answer is no 5xx and matches the schema
    case.call_and_validate(headers={"X-API-Key": merchant.plaintext_key}, checks=CHECKS)


@pytest.mark.integration
@schema.parametrize()
@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
def test_every_check_holds_for_every_operation(case, merchant, unthrottled, in_test_transaction):
    # given a generated request, valid or not (negative data included)
    # when it is sent / then every schemathesis check holds: no 5xx, the documented status codes,
    # bodies and headers, schema-invalid input refused, schema-valid input accepted, auth enforced
    case.call_and_validate(headers={"X-API-Key": merchant.plaintext_key}, checks=ALL_CHECKS)


@pytest.mark.integration
def test_the_stateful_phase_finds_nothing_along_the_schemas_links(merchant, unthrottled, in_test_transaction):
    # given the state machine schemathesis builds from the schema's links (create a session, then
    # read, poll, expire it and submit transactions to it, in generated orders)
    key = merchant.plaintext_key

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": {"X-API-Key": key}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=ALL_CHECKS, headers={"X-API-Key": key})

    # when it runs, bounded / then every check holds at every step
    Workflow.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None,
                                   derandomize=DERANDOMIZE, suppress_health_check=list(HealthCheck)))


FOLLOW_UPS = ("get_session", "get_session_status", "expire_session")


@pytest.mark.integration
@settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_created_session_survives_any_sequence_of_its_linked_operations(data, merchant, unthrottled,
                                                                         in_test_transaction):
    # given a session created from a generated valid request
    headers = {"X-API-Key": merchant.plaintext_key}
    create = data.draw(schema["/create_session"]["POST"].as_strategy(), label="create")
    created = create.call(headers=headers)
    create.validate_response(created, checks=CHECKS)
    if created.status_code != 201:
        return
    session_id = created.json()["session_id"]
    # when the operations its links point to run on it, valid or not, in any order
    steps = [*data.draw(st.permutations(FOLLOW_UPS), label="order"),
             *data.draw(st.lists(st.sampled_from(FOLLOW_UPS), max_size=3), label="again")]
    for operation_id in steps:
        mode = data.draw(st.sampled_from(list(GenerationMode)), label="mode")
        case = data.draw(schema.find_operation_by_id(operation_id).as_strategy(
            generation_mode=mode, path_parameters={"session_id": session_id}), label=operation_id)
        # then no answer is a 5xx or off the schema
        case.call_and_validate(headers=headers, checks=CHECKS)


# What the fuzzer found, pinned: each answer is a 400 naming the field once.
@pytest.mark.parametrize(("body", "code", "field", "says"), [
    ({"web3_asset": {"type": "native", "symbol": "ETH", "decimals": 18.5}}, "web3_asset_invalid", "web3_asset",
     "decimals"),
    ({"web3_asset": []}, "web3_asset_invalid", "web3_asset", "object"),
    ({"web3_xpub": "not-an-xpub"}, "web3_xpub_invalid", "web3_xpub", "public key"),
    ({"enabled_providers": [[]]}, "enabled_providers_invalid_choice", "enabled_providers", "choice"),
])
def test_odd_web3_setups_are_refused_with_their_field(api, body, code, field, says):
    response = api.patch("/account", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert says in error["message"]


def test_a_web3_transaction_without_a_configured_chain_is_a_503_in_the_error_shape(api, anon, settings):
    # given a merchant taking crypto, and no node configured
    settings.WEB3_TEST_PROVIDER_URL = ""
    xpub = ("xpub6DyUKdwoLWmUJ4Tn9Bbsdtx7B5Ws18mEN19e5HT52ikE53FiUheSQXrZUNPovqfyKmw4579A1Mm3GXXKM39N64uooBfJ4tN"
            "AzFsEbodRTx4")
    assert api.patch("/account", {"web3_xpub": xpub, "web3_asset": {"type": "native", "symbol": "ETH", "decimals": 18},
                                  "enabled_providers": ["web3"]}, format="json").status_code == 200
    session = api.post("/create_session", {"amount": "10.00", "currency": "EUR"}, format="json").json()
    # when the checkout page submits a transaction
    response = anon.post(f"/session/{session['session_id']}/web3/tx", {"tx_hash": "0x" + "ab" * 32}, format="json")
    # then the answer says the chain is unavailable, in the one error shape
    assert response.status_code == 503
    assert response.json() == {"error": {"code": "chain_unavailable", "message": "WEB3_TEST_PROVIDER_URL is not set.",
                                         "field": None}}
