"""The OpenAPI schema is valid, complete, and its docs UI works without the internet."""

from __future__ import annotations

import re

import jsonschema
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

# Pages for people, not API operations: the landing page, HTML forms, the admin, the docs themselves.
NOT_API = {"", "admin/", "checkout", "access", "checkout/<str:session_id>/simulate", "checkout/<str:session_id>/pay/<str:provider>",
           "pay/<str:slug>",
           "api/schema/", "api/docs/", "api/redoc/"}
NOT_API_PREFIXES = ("admin/", "access/", "static/", "media/", "refund-claim/")


def _routes(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route in NOT_API:
                continue
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _as_openapi_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.lstrip("^").rstrip("$"))


@pytest.fixture
def schema(anon):
    response = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_every_url_of_the_api_and_its_webhooks_is_documented(schema):
    routes = [r for r in _routes(get_resolver().url_patterns)
              if r not in NOT_API and not r.startswith(NOT_API_PREFIXES)]
    assert routes, "no routes found"
    missing = [r for r in routes if _as_openapi_path(r) not in schema["paths"]]
    assert missing == []
    assert {"/create_session", "/session/{session_id}/status", "/webhooks/stripe"} <= set(schema["paths"])


def test_errors_share_one_component_and_headers_are_described(schema):
    # given the documented error shape
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "field"}
    # then every 4xx of every operation refers to it
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, status)
    create = schema["paths"]["/create_session"]["post"]
    assert {"Idempotency-Key"} <= {p["name"] for p in create["parameters"] if p["in"] == "header"}
    assert create["security"] == [{"ApiKeyAuth": []}]
    assert create["responses"]["429"]["headers"]["Retry-After"]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A secret key, `sk_test_…` or `sk_live_…`."}
    webhook = schema["paths"]["/webhooks/stripe"]["post"]
    assert webhook["parameters"][0]["name"] == "Stripe-Signature" and webhook["security"] == []
    assert schema["paths"]["/session/{session_id}/status"]["get"].get("security") in (None, [], [{}])


def test_the_docs_ui_is_served_from_our_own_static_files(anon):
    # when the docs page is opened
    page = anon.get("/api/docs/")
    # then it loads Swagger UI from our static files, never from a CDN
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in a for a in assets), assets
    assert not [a for a in assets if a.startswith(("http://", "https://", "//"))]
    for asset in assets:
        if asset.startswith("/static/"):
            served = anon.get(asset)
            assert served.status_code == 200, asset
            b"".join(served.streaming_content) if served.streaming else served.content


def test_each_provider_webhook_documents_its_signature_headers(schema):
    headers = {path: [p["name"] for p in schema["paths"][path]["post"]["parameters"] if p["in"] == "header"]
               for path in ("/webhooks/stripe", "/webhooks/onecom", "/webhooks/web3")}
    assert headers == {"/webhooks/stripe": ["Stripe-Signature"],
                       "/webhooks/onecom": ["webhook-id", "webhook-timestamp", "webhook-signature"],
                       "/webhooks/web3": ["Web3-Signature"]}
    onecom = schema["paths"]["/webhooks/onecom"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # payment.succeeded needs an amount and a supported currency (the server refuses it without them)
    succeeded = next(branch for branch in onecom["oneOf"] if branch["title"] == "payment.succeeded")
    assert all(set(data["required"]) == {"amount", "currency"} for data in succeeded["properties"]["data"]["oneOf"])
    assert all(operation["post"]["security"] == [] for path, operation in schema["paths"].items()
               if path.startswith("/webhooks/"))


def test_the_web3_transaction_endpoint_is_public_and_documents_its_answers(schema):
    operation = schema["paths"]["/session/{session_id}/web3/tx"]["post"]
    assert operation.get("security") in (None, [], [{}])
    assert {"200", "202", "400", "404", "422", "429", "503"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][body]["required"] == ["tx_hash"]


def test_the_entitlement_key_endpoints_are_documented_with_every_verify_code(schema):
    assert {"/keys", "/keys/verify", "/keys/{key_id}", "/keys/{key_id}/revoke", "/keys/{key_id}/rotate",
            "/keys/{key_id}/upgrade"} <= set(schema["paths"])
    verify = schema["paths"]["/keys/verify"]["post"]
    assert verify["security"] == [{"ApiKeyAuth": []}]
    answer = verify["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    code = schema["components"]["schemas"][answer]["properties"]["code"]
    enum = schema["components"]["schemas"][code["$ref"].rsplit("/", 1)[1]]["enum"]
    assert set(enum) == {"valid", "revoked", "expired", "unknown", "refunded", "wrong_mode"}
    entitlement = schema["components"]["schemas"]["CreateSessionInputRequest"]["properties"]["entitlement"]
    assert set(entitlement["properties"]) == {"expires_in_days", "metadata"}


# ---------------------------------------------------------------- where the schema and the server disagreed


def _json_schema(node):
    """OpenAPI 3.0's `nullable` as JSON Schema says it."""
    if isinstance(node, dict):
        node = {key: _json_schema(value) for key, value in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_json_schema(value) for value in node]
    return node


def _validator(schema, component):
    return jsonschema.Draft4Validator(_json_schema({**component, "components": schema["components"]}))


@pytest.mark.parametrize("limit", ["AAA", "null", "true", "0.5", "0", "101", "-1", "1e1"])
def test_a_limit_that_is_not_1_to_100_is_a_400_as_the_schema_says(api, schema, limit):
    for path in ("/sessions", "/keys"):
        response = api.get(path, {"limit": limit})
        assert response.status_code == 400, (path, limit, response.content)
        assert response.json()["error"]["code"] == "limit_invalid"
        parameter = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert api.get("/sessions", {"limit": "100"}).status_code == 200


def test_create_session_documents_its_422(schema):
    operation = schema["paths"]["/create_session"]["post"]
    assert "422" in operation["responses"] and "web3_rate_unavailable" in operation["description"]


def test_the_account_body_refuses_what_the_server_refuses(api, schema):
    body = schema["components"]["schemas"]["PatchedAccountInputRequest"]
    validator = _validator(schema, body)
    # unknown fields: parameter_unknown on the server, additionalProperties false in the schema
    assert body["additionalProperties"] is False
    assert api.patch("/account", {"nickname": "x"}, format="json").json()["error"]["code"] == "parameter_unknown"
    # vat_rate "": refused by both
    assert not validator.is_valid({"vat_rate": ""})
    assert api.patch("/account", {"vat_rate": ""}, format="json").status_code == 400
    assert validator.is_valid({"vat_rate": "25.5"}) and validator.is_valid({"vat_rate": 7})
    # web3_asset.currency: null is taken by the server, and now by the schema
    asset = {"type": "erc20", "symbol": "EURC", "decimals": 6, "address": "0x" + "ab" * 20, "currency": None}
    assert validator.is_valid({"web3_asset": asset})
    assert api.patch("/account", {"web3_asset": asset}, format="json").status_code == 200


@pytest.mark.parametrize("amount", ["0", "0.00", "000"])
def test_a_zero_amount_is_refused_by_the_schema_as_by_the_server(api, schema, amount):
    body = schema["components"]["schemas"]["CreateSessionInputRequest"]
    amount_schema = body["properties"]["amount"]
    assert not _validator(schema, amount_schema).is_valid(amount)
    assert _validator(schema, amount_schema).is_valid("0.01")
    assert api.post("/create_session", {"amount": amount, "currency": "EUR"}, format="json").status_code == 400
