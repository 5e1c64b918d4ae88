"""What the session endpoints return, for the OpenAPI schema (the views build plain dicts)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from sessions_app.models import Status


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "sessions_app.apis.AmountField"

    def map_serializer_field(self, auto_schema, direction):
        decimal = {"type": "string", "pattern": r"^\d{1,15}(\.\d{1,3})?$", "example": "99.99"}
        if direction == "response":
            return decimal
        return {"oneOf": [decimal, {"type": "number", "minimum": 0, "exclusiveMinimum": True, "example": 99.99}],
                "description": "A positive amount in major units, as a decimal string or a JSON number "
                               "(parsed exactly, never as a float)."}


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
    client_reference_id = serializers.CharField(allow_blank=True)
    success_url = serializers.CharField(allow_blank=True)
    cancel_url = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    failure_reason = serializers.CharField(allow_blank=True, help_text="`expired`, a decline code, or empty.")
    provider = serializers.CharField(allow_blank=True)
    provider_reference = serializers.CharField(allow_blank=True)
    paid_at = serializers.DateTimeField(allow_null=True)

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

    class Meta:
        ref_name = "SessionStatus"


SESSION_ID = OpenApiParameter("session_id", str, OpenApiParameter.PATH, description="The session's id (a UUID).")
LIST_PARAMETERS = [
    OpenApiParameter("status", str, enum=Status.values, description="Only sessions in this status."),
    OpenApiParameter("limit", int, description="Page size, 1 to 100 (default 20)."),
    OpenApiParameter("cursor", str, description="The opaque cursor from `next` or `previous`."),
]
