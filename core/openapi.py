"""OpenAPI pieces shared by every endpoint: the error shape, the X-API-Key scheme, common
headers, and the provider webhooks (plain Django views, so they are described here)."""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from core import currencies


class AutoSchema(_AutoSchema):
    def get_serializer_name(self, serializer, direction) -> str:
        # Views nest their serializers (CreateSessionApi.InputSerializer): name the component after
        # both, or every view's "Input" would collide in one component.
        outer, _, inner = type(serializer).__qualname__.rpartition(".")
        if outer:
            return outer.split(".")[-1].removesuffix("Api").removesuffix("View") + inner
        return super().get_serializer_name(serializer, direction)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, stable: branch on it (`amount_invalid`, `rate_limited`).")
    message = serializers.CharField(help_text="For humans; may change.")
    field = serializers.CharField(allow_null=True, help_text="The request field at fault, if any.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()

    class Meta:
        ref_name = "Error"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "keys_app.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "A secret key, `sk_test_…` or `sk_live_…`."}


_DESCRIPTIONS = {
    400: "Bad input. `error.code` says what, `error.field` where.",
    401: "Missing, malformed, unknown, revoked or expired API key, or an entitlement key (`key_not_merchant`).",
    403: "Not allowed.",
    404: "Not found (or not yours).",
    409: "Conflicts with the current state (e.g. the session is no longer open).",
    413: "The body is too large.",
    415: "The body is not JSON.",
    422: "Well-formed but cannot be done: `error.code` says why.",
    429: "Too many requests: wait `Retry-After` seconds.",
    503: "The endpoint is not configured on this server.",
}

RETRY_AFTER = OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=[429],
                               description="Seconds to wait before retrying.")


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, all in the one error shape."""
    responses = {}
    for status in statuses:
        responses[status] = OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[status])
    return responses


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Up to 255 characters. The first response is stored for 24 h and replayed for a retry with the "
                "same key and body (header `Idempotent-Replayed: true`); the same key with another body is a 409.",
)


# ---------------------------------------------------------------- webhooks (plain Django views)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_WEBHOOK_ACK = {
    "type": "object",
    "properties": {
        "received": {"type": "boolean"},
        "outcome": {"type": "string", "description": "processed, ignored, rejected, unmatched or duplicate."},
        "detail": {"type": "string"},
    },
    "required": ["received", "outcome", "detail"],
}

# The webhook bodies say what the server takes, no more and no less, so that a body the schema
# refuses is one the server refuses (and the other way round). Providers send event types we do not
# handle: those are stored and ignored, so `type` is any string.
_STRIPE_EVENT = {
    "type": "object",
    "description": "A Stripe event. Handled types: payment_intent.processing|succeeded|payment_failed, "
                   "checkout.session.completed|async_payment_succeeded|async_payment_failed|expired, "
                   "charge.refunded. Others are stored and ignored.",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 255, "example": "evt_1Nq...",
               "description": "The event id (at most 255 characters: a longer one is `400 event_id_too_long`). "
                              "Without one, the body's digest stands in."},
        "type": {"type": "string", "example": "payment_intent.succeeded"},
        "livemode": {"description": "true or false; any other value counts as absent."},
        "data": {"description": "`{\"object\": {...}}` as Stripe sends it; any other shape has no effect."},
    },
    "required": ["type"],
}


def _onecom_paid_data(exponent: int, codes: list[str]) -> dict[str, Any]:
    """payment.succeeded's data for the currencies of one exponent: a positive amount with at most
    that many decimals (and at most 15 digits in minor units)."""
    whole = rf"[1-9]\d{{0,{14 - exponent}}}"
    if exponent:
        fractions = "|".join(rf"0{{{k}}}[1-9]\d{{0,{exponent - k - 1}}}" for k in range(exponent))
        amount = rf"^({whole}(\.\d{{1,{exponent}}})?|0\.({fractions}))$"
    else:
        amount = rf"^{whole}$"
    return {
        "type": "object",
        "properties": {"amount": {"type": "string", "pattern": amount, "example": "99.99" if exponent == 2 else "5",
                                  "description": "A decimal string in major units, never a JSON number."},
                       "currency": {"type": "string", "enum": codes}},
        "required": ["amount", "currency"],
    }


def onecom_event_schema() -> dict[str, Any]:
    by_exponent: dict[int, list[str]] = {}
    for code, exponent in sorted(currencies.EXPONENTS.items()):
        by_exponent.setdefault(exponent, []).append(code)
    data_fields = {
        "session_id": {"description": "Our session id (`reference`), a UUID; another value matches no "
                                      "session."},
        "payment_id": {"description": "One.com's payment id, e.g. `pay_8c1d0e...`."},
        "reason": {"description": "For payment.failed: the decline reason."},
        "retryable": {"description": "For payment.failed: `false` ends the session."},
    }
    return {
        "type": "object",
        "description": "A One.com callback. For payment.succeeded, amount and currency must equal the session's "
                       "(a supported currency, at most its number of decimals). The contract's other types "
                       "are payment.processing, payment.failed and payment.expired; any other is stored and "
                       "ignored.",
        "oneOf": [
            {"title": "payment.succeeded", "type": "object",
             "properties": {"type": {"type": "string", "enum": ["payment.succeeded"]},
                            "data": {"oneOf": [_onecom_paid_data(e, codes) for e, codes in sorted(by_exponent.items())]}},
             "required": ["type", "data"]},
            {"title": "other events", "type": "object",
             "properties": {"type": {"type": "string", "not": {"enum": ["payment.succeeded"]},
                                     "example": "payment.processing"},
                            "data": {"type": "object", "properties": data_fields}},
             "required": ["type", "data"]},
        ],
    }


_WEB3_HINT = {
    "type": "object",
    "description": "An address-activity notification. Only a hint: the chain is read to see what was paid.",
    "properties": {
        "chain_id": {"type": "integer", "description": "A chain this server verifies on (WEB3_TEST_CHAIN_ID or WEB3_LIVE_CHAIN_ID)."},
        "address": {"type": "string", "pattern": "^0x([0-9a-f]{40}|[0-9A-F]{40})$",
                    "description": "A session's address (an EIP-55 checksummed one is taken too)."},
        "tx_hash": {"type": "string", "nullable": True, "pattern": "^(0x)?[0-9a-fA-F]{64}$",
                    "description": "Optional; null is the same as absent."},
    },
    "required": ["chain_id", "address"],
}


def _header(name: str, description: str) -> dict[str, Any]:
    # An empty signature header is a missing one (`400 signature_missing`).
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string", "minLength": 1},
            "description": description}


def _webhook_operation(*, operation_id: str, summary: str, description: str, headers: list[dict[str, Any]],
                       body: dict[str, Any], bad_request: str = "Unsigned, badly signed, stale, or not an event.",
                       unavailable: str = "No webhook secret is configured."):
    error = {"content": _json(_ref("Error"))}
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": ["webhooks"],
            "security": [],
            "parameters": headers,
            "requestBody": {"required": True, "content": _json(body)},
            "responses": {
                "200": {"description": "Verified and stored (or recognised as a duplicate).",
                        "content": _json(_WEBHOOK_ACK)},
                "400": {"description": bad_request, **error},
                "413": {"description": _DESCRIPTIONS[413], **error},
                "415": {"description": _DESCRIPTIONS[415], **error},
                "503": {"description": unavailable, **error},
            },
        }
    }


WEBHOOK_PATHS: dict[str, dict[str, Any]] = {
    "/webhooks/stripe": _webhook_operation(
        operation_id="receive_stripe_webhook",
        summary="Receive Stripe webhook",
        description="Stripe calls this. The body must be the exact bytes Stripe signed, at most 256 KiB, "
                    "`Content-Type: application/json`. Signatures older or newer than the tolerance "
                    "(300 s) are refused. The same event id is processed once.",
        headers=[_header("Stripe-Signature", "`t=<unix time>,v1=<hex HMAC-SHA256(secret, \"t.body\")>`; several "
                                             "`v1` during a secret rotation.")],
        body=_STRIPE_EVENT,
    ),
    "/webhooks/onecom": _webhook_operation(
        operation_id="receive_onecom_webhook",
        summary="Receive One.com webhook",
        description="One.com calls this with a [Standard Webhooks](https://www.standardwebhooks.com/) signature "
                    "made with the secret of its mode (ONECOM_TEST_WEBHOOK_SECRET or ONECOM_LIVE_WEBHOOK_SECRET). At most 64 KiB, `Content-Type: application/json`. A timestamp "
                    "more than 5 minutes off is refused. The same `webhook-id` is processed once.",
        headers=[
            _header("webhook-id", "The event id; a resend keeps it."),
            _header("webhook-timestamp", "Unix seconds."),
            _header("webhook-signature", "`v1,<base64 HMAC-SHA256(secret, \"{id}.{timestamp}.{body}\")>`; several, "
                                         "space-separated, during a secret rotation."),
        ],
        body=onecom_event_schema(),
        bad_request="Unsigned, badly signed, stale, or not a well-formed event (`amount_invalid`, "
                    "`currency_invalid`, `event_invalid`). Nothing is stored.",
    ),
    "/webhooks/web3": _webhook_operation(
        operation_id="receive_web3_webhook",
        summary="Receive a Web3 address-activity notification",
        description="A chain watcher calls this when a session's address sees activity. At most 16 KiB. The "
                    "notification only makes us read the chain (the node of the chain's mode); the outcome is `processed` "
                    "when it named a session's address, else `unmatched`.",
        headers=[_header("Web3-Signature", "`t=<unix time>,v1=<hex HMAC-SHA256(WEB3_WEBHOOK_SECRET, "
                                           "\"<t>.<body>\")>`.")],
        body=_WEB3_HINT,
        bad_request="Unsigned, badly signed, stale, another chain (`chain_mismatch`), or a bad address or hash.",
        unavailable="No webhook secret is configured, or the node is not configured or does not answer "
                    "(`chain_unavailable`).",
    ),
}


def add_webhook_paths(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the webhook endpoints and make sure Error exists."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", {
        "type": "object",
        "properties": {"error": _ref("ErrorDetail")},
        "required": ["error"],
    })
    for path, item in WEBHOOK_PATHS.items():
        result["paths"].setdefault(path, copy.deepcopy(item))
    _web3_chain_id(result)
    _drop_blank_format_defaults(result)
    _blank_alternatives_any_of(result)
    _add_session_links(result)
    return result


def _web3_chain_id(result: dict[str, Any]) -> None:
    """The one chain this server verifies on is a setting: say which."""
    from django.conf import settings

    operation = result["paths"].get("/webhooks/web3", {}).get("post")
    if operation is None:
        return
    chain_id = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]["chain_id"]
    chains = sorted({c for c in (settings.WEB3_TEST_CHAIN_ID, settings.WEB3_LIVE_CHAIN_ID) if c})
    chain_id["enum"] = chains
    chain_id["example"] = chains[0] if chains else 1


_SESSION_LINKS = {
    "GetSession": "get_session",
    "GetSessionStatus": "get_session_status",
    "ExpireSession": "expire_session",
}


def _add_session_links(result: dict[str, Any]) -> None:
    """OpenAPI links: a created (or expired) session's id feeds the operations on that session.
    Readers see what follows what; the stateful fuzzer walks the same links."""
    for path, method, status in (("/create_session", "post", "201"), ("/sessions/{session_id}/expire", "post", "200")):
        response = result["paths"].get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        response["links"] = {
            name: {"operationId": operation_id, "parameters": {"session_id": "$response.body#/session_id"}}
            for name, operation_id in _SESSION_LINKS.items()
        }


_BLANK = {"type": "string", "maxLength": 0}


def _blank_alternatives_any_of(node: Any) -> None:
    """drf-spectacular writes a blank-allowed field as oneOf [its schema, a blank string]. When its
    schema takes "" too (a pattern such as {0,32}), "" matches both and oneOf refuses it, though the
    server takes it: anyOf says what is meant."""
    if isinstance(node, dict):
        alternatives = node.get("oneOf")
        if isinstance(alternatives, list) and _BLANK in alternatives:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _blank_alternatives_any_of(value)
    elif isinstance(node, list):
        for value in node:
            _blank_alternatives_any_of(value)


def _drop_blank_format_defaults(node: Any) -> None:
    """Optional email/URL fields default to "", which is not a valid email or URI: a strict validator
    rejects the schema. The blank alternative is documented beside it (oneOf), so drop the default."""
    if isinstance(node, dict):
        if node.get("format") in ("email", "uri") and node.get("default") == "":
            del node["default"]
        for value in node.values():
            _drop_blank_format_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _drop_blank_format_defaults(value)


__all__ = ["IDEMPOTENCY_KEY", "RETRY_AFTER", "ErrorSerializer", "errors", "inline_serializer"]
