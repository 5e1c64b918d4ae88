"""What the session endpoints return, for the OpenAPI schema (the views build plain dicts)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from core import currencies
from core.pagination import PAGE_PARAMETERS
from sessions_app.links.apis import PUBLISHABLE_SESSION_SCHEMA
from sessions_app.models import Status, Web3Transfer


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "sessions_app.inputs.AmountField"

    def map_serializer_field(self, auto_schema, direction):
        decimal = {"type": "string", "pattern": r"^\d{1,15}(\.\d{1,3})?$", "example": "99.99"}
        if direction == "response":
            return decimal
        # Positive: zero (0, 0.0, 000.00) is refused by the server, so the schema refuses it too.
        positive = {"type": "string", "example": "99.99",
                    "pattern": r"^(0*[1-9]\d{0,14}(\.\d{1,3})?|0+\.([1-9]\d{0,2}|0[1-9]\d?|00[1-9]))$"}
        return {"oneOf": [positive, {"type": "number", "minimum": 0, "exclusiveMinimum": True, "example": 99.99}],
                "description": "A positive amount in major units, as a decimal string or a JSON number "
                               "(parsed exactly, never as a float)."}


class LastPaymentErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The provider's decline code, e.g. `generic_decline`.")
    message = serializers.CharField(allow_blank=True)
    at = serializers.DateTimeField()

    class Meta:
        ref_name = "LastPaymentError"


class LatePaymentSerializer(serializers.Serializer):
    amount = serializers.CharField(allow_null=True, help_text="As the provider reported it, in major units.")
    currency = serializers.CharField(allow_blank=True)
    provider = serializers.CharField()
    provider_reference = serializers.CharField(allow_blank=True)
    received_at = serializers.DateTimeField()

    class Meta:
        ref_name = "LatePayment"


class FulfilAnywaySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    by = serializers.CharField(help_text="Who decided: `api_key:<id>` or `user:<id>`.")

    class Meta:
        ref_name = "FulfilAnyway"


class SessionEntitlementSerializer(serializers.Serializer):
    expires_in_days = serializers.IntegerField(allow_null=True, help_text="null: the key never expires.")
    metadata = serializers.DictField(child=serializers.JSONField())

    class Meta:
        ref_name = "SessionEntitlement"


class SessionSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    checkout_url = serializers.URLField(help_text="Send the customer here.")
    url = serializers.URLField(help_text="The same as checkout_url.")
    status = serializers.ChoiceField(choices=Status.choices)
    amount = serializers.CharField(help_text="Decimal string in major units, e.g. \"99.99\".")
    amount_minor = serializers.IntegerField(help_text="The amount in minor units (cents).")
    currency = serializers.CharField(min_length=3, max_length=3)
    mode = serializers.ChoiceField(choices=["test", "live"])
    providers = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField(allow_blank=True)
    customer_email = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField(child=serializers.JSONField())
    entitlement = SessionEntitlementSerializer(help_text="What the buyer's entitlement key carries.")
    client_reference_id = serializers.CharField(allow_blank=True)
    payment_link = serializers.CharField(allow_null=True, help_text="The payment link it was started from, if any.")
    success_url = serializers.CharField(allow_blank=True)
    cancel_url = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    failure_reason = serializers.CharField(allow_blank=True, help_text="`expired`, a decline code, or empty.")
    provider = serializers.CharField(allow_blank=True)
    provider_reference = serializers.CharField(allow_blank=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    payment_attempts_failed = serializers.IntegerField(
        min_value=0, help_text="Declined attempts. A decline never ends the session: the customer may retry.")
    last_payment_error = LastPaymentErrorSerializer(allow_null=True, help_text="The latest declined attempt.")
    late_payments = LatePaymentSerializer(
        many=True, help_text="Payments that arrived after the session had failed (status stays `failed`).")
    fulfil_anyway = FulfilAnywaySerializer(allow_null=True,
                                           help_text="Set when the merchant chose to deliver a late-paid session.")
    amount_refunded = serializers.CharField(help_text="What succeeded refunds gave back, a decimal string.")
    refund_status = serializers.CharField(
        help_text="`none`, `partially_refunded` or `refunded`, from the succeeded refunds; `status` stays `paid`.")

    class Meta:
        ref_name = "Session"


class SessionPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = SessionSerializer(many=True)

    class Meta:
        ref_name = "SessionPage"


class SessionStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    session_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    paid_at = serializers.DateTimeField(allow_null=True)
    refund_status = serializers.CharField(help_text="`none`, `partially_refunded` or `refunded`.")

    class Meta:
        ref_name = "SessionStatus"


class Web3TransferSerializer(serializers.Serializer):
    log_index = serializers.IntegerField(help_text="-1 for a native (ether) transfer.")
    amount = serializers.RegexField(r"^\d+$", help_text="In the asset's smallest units, as a string.")
    confirmations = serializers.IntegerField(min_value=0)
    status = serializers.ChoiceField(choices=Web3Transfer.Status.choices)
    note = serializers.CharField(allow_blank=True,
                                 help_text="`underpaid`, `overpaid`, `late`, `outside_quote`, or empty.")

    class Meta:
        ref_name = "Web3Transfer"


class Web3TxResultSerializer(serializers.Serializer):
    session_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices, help_text="The session's status after the check.")
    tx_hash = serializers.CharField(help_text="Normalized: lower case, 0x-prefixed.")
    found = serializers.BooleanField(help_text="False (and status 202) while the transaction is not mined.")
    transfers = Web3TransferSerializer(many=True)

    class Meta:
        ref_name = "Web3TxResult"


SESSION_ID = OpenApiParameter("session_id", str, OpenApiParameter.PATH, description="The session's id (a UUID).")
LIST_PARAMETERS = [
    OpenApiParameter("status", str, enum=Status.values, description="Only sessions in this status."),
    *PAGE_PARAMETERS,
]


_METADATA_SCHEMA = {
    "type": "object", "maxProperties": 50,
    "additionalProperties": {"oneOf": [{"type": "string", "maxLength": 500}, {"type": "number"},
                                       {"type": "boolean"}]},
    "description": "Up to 50 keys of at most 40 characters; values are strings, numbers or booleans.",
}


def _amount_maximum(amount: dict) -> None:
    """A JSON-number amount above SESSION_MAX_AMOUNT is `400 amount_too_large`."""
    for alternative in amount.get("oneOf", []):
        if alternative.get("type") == "number":
            alternative["maximum"] = float(settings.SESSION_MAX_AMOUNT)
    amount["description"] = amount.get("description", "") + f" At most {settings.SESSION_MAX_AMOUNT}."


def _price_fields(props: dict) -> None:
    """What create_session and create_payment_link check alike: the currency, the amount's ceiling,
    a non-empty provider list, flat metadata and http(s) return URLs."""
    props["currency"]["enum"] = sorted(currencies.EXPONENTS)
    props["currency"]["description"] = "ISO 4217 code (case-insensitive); the amount's decimals follow it."
    _amount_maximum(props["amount"])
    props["providers"]["minItems"] = 1
    for name in ("success_url", "cancel_url"):
        # oneOf, or anyOf once core.openapi has seen the blank alternative.
        for alternative in props[name].get("oneOf", props[name].get("anyOf", [])):
            if alternative.get("format") == "uri":
                alternative["pattern"] = "^[hH][tT][tT][pP][sS]?://"
    props["metadata"] = dict(_METADATA_SCHEMA)


def refine_schema(result, generator, request, public):
    """drf-spectacular postprocessing hook: say in the schema what the create_session and payment link
    validation enforces, so that a client (and the fuzzer) can build a valid request from the schema alone."""


    created = result.get("paths", {}).get("/create_session", {}).get("post", {}).get("responses", {}).get("201")
    if created is not None:
        # A publishable key is answered with less than a secret key (sessions_app/links/apis.py).
        content = created["content"]["application/json"]
        content["schema"] = {"anyOf": [content["schema"], PUBLISHABLE_SESSION_SCHEMA]}
    schemas = result.get("components", {}).get("schemas", {})
    # Bodies whose unknown fields are answered `400 parameter_unknown`.
    for name in ("CreateSessionInputRequest", "PatchedAccountInputRequest", "PaymentLinkCreateRequest",
                 "PatchedPaymentLinkUpdateRequest"):
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    link = schemas.get("PaymentLinkCreateRequest")
    if link is not None:
        _price_fields(link["properties"])
        for name in ("min", "max", "preset"):
            _amount_maximum(schemas["CustomAmountRequest"]["properties"][name])
    body = schemas.get("CreateSessionInputRequest")
    if body is None:
        return result
    props = body["properties"]
    _price_fields(props)
    props["expires_at"] = {
        "oneOf": [{"type": "integer", "description": "Unix time"},
                  {"type": "string", "format": "date-time"}],
        "description": "Between 30 minutes and 24 hours from now (default 24 hours).",
    }
    return result
