"""What the entitlement key endpoints take and return, for the OpenAPI schema (the views build plain dicts)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from core.pagination import PAGE_PARAMETERS
from keys_app.models import EntitlementKey, Mode


class VerifiedKeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    mode = serializers.ChoiceField(choices=Mode.values)
    session_id = serializers.UUIDField(help_text="The payment session that bought the key.")
    customer_email = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null: never expires.")
    metadata = serializers.DictField(child=serializers.JSONField(),
                                     help_text="From the session's `entitlement.metadata`.")

    class Meta:
        ref_name = "VerifiedKey"


class VerificationSerializer(serializers.Serializer):
    valid = serializers.BooleanField(help_text="True only when `code` is `valid`.")
    code = serializers.ChoiceField(choices=EntitlementKey.Verdict.choices)
    key = VerifiedKeySerializer(allow_null=True, help_text="null when `code` is `unknown`.")

    class Meta:
        ref_name = "Verification"


class KeySerializer(VerifiedKeySerializer):
    display = serializers.CharField(help_text="Prefix and last 4 characters; the key itself is never stored.")
    status = serializers.ChoiceField(choices=EntitlementKey.Status.choices)
    revoked_at = serializers.DateTimeField(allow_null=True)
    refunded_at = serializers.DateTimeField(allow_null=True)
    replaces = serializers.UUIDField(allow_null=True, help_text="The key this one replaced (rotation, upgrade).")
    superseded_by = serializers.UUIDField(allow_null=True, help_text="The key that replaced this one.")
    superseded_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "EntitlementKey"


class KeyPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = KeySerializer(many=True)

    class Meta:
        ref_name = "EntitlementKeyPage"


class OverlapInputSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(
        min_value=0, max_value=168, required=False, allow_null=True,
        help_text="How long the old key keeps verifying, 0 to 168 hours; 24 when left out.")

    class Meta:
        ref_name = "KeyReplacementRequest"


class ReplacedKeySerializer(serializers.Serializer):
    key = KeySerializer(help_text="The new key.")
    plaintext = serializers.CharField(help_text="The new key itself, in this response only. Give it to your "
                                                "customer; it cannot be shown again.")
    previous = KeySerializer(help_text="The old key, with the end of its overlap as `expires_at`.")

    class Meta:
        ref_name = "ReplacedKey"


KEY_ID = OpenApiParameter("key_id", str, OpenApiParameter.PATH, description="The key's id (a UUID).")
KEY_LIST_PARAMETERS = [
    OpenApiParameter("session_id", str, description="Only the keys bought by this session (a UUID)."),
    OpenApiParameter("customer_email", {"type": "string", "maxLength": 254, "pattern": "^[^\\x00]*$"},
                     description="Only the keys of this customer (case-insensitive); at most 254 characters."),
    *PAGE_PARAMETERS,
]
