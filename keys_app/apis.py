from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from keys_app import web3_setup
from keys_app.models import PROVIDERS, Account
from keys_app.services import account_update
from payments_site.openapi import RETRY_AFTER, errors

_ASSET_COMMON = {
    "symbol": {"type": "string", "example": "ETH",
               "description": "1-11 letters or digits; stored in upper case."},
    "decimals": {"type": "integer", "minimum": 0, "maximum": 36, "example": 18},
}


@extend_schema_field({
    "oneOf": [
        {"type": "object", "title": "Native", "additionalProperties": False,
         "properties": {"type": {"type": "string", "enum": ["native"]}, **_ASSET_COMMON},
         "required": ["type", "symbol", "decimals"]},
        {"type": "object", "title": "ERC-20", "additionalProperties": False,
         "properties": {"type": {"type": "string", "enum": ["erc20"]}, **_ASSET_COMMON,
                        "address": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$",
                                    "description": "The token contract."},
                        "currency": {"type": "string", "example": "EUR",
                                     "description": "A stablecoin's ISO 4217 currency: priced 1:1 in it only."}},
         "required": ["type", "symbol", "decimals", "address"]},
    ],
    "description": "The asset customers pay in; null for none.",
})
class Web3AssetField(serializers.JSONField):
    pass


def _invalid(exc: web3_setup.SetupInvalid) -> serializers.ValidationError:
    # Raised from validate_<field>: DRF files it under that field already.
    return serializers.ValidationError(serializers.ErrorDetail(str(exc), code=exc.code))


class AccountApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        enabled_providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDERS))
        web3_asset = Web3AssetField(allow_null=True)

        class Meta:
            model = Account
            fields = ["id", "name", "email", "address", "vat_id", "vat_rate", "invoice_prefix", "created_at",
                      "enabled_providers", "web3_xpub", "web3_asset"]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        email = serializers.EmailField(max_length=254, required=False)
        address = serializers.CharField(max_length=1000, required=False, allow_blank=True)
        vat_id = serializers.RegexField(r"^[A-Za-z0-9 .-]{0,32}$", required=False, allow_blank=True)
        vat_rate = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False)
        invoice_prefix = serializers.RegexField(r"^[A-Z0-9][A-Z0-9-]{0,11}$", required=False)
        enabled_providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDERS), required=False,
                                                  allow_empty=False, max_length=len(PROVIDERS))
        web3_xpub = serializers.CharField(max_length=200, required=False, allow_blank=True)
        # JSON numbers arrive as Decimal (parsers.py): let them through to asset_validate, which names the problem.
        web3_asset = Web3AssetField(required=False, allow_null=True, encoder=DjangoJSONEncoder)

        def validate_enabled_providers(self, value):
            return [name for name in PROVIDERS if name in value]

        def validate_web3_xpub(self, value):
            try:
                return web3_setup.xpub_validate(value)
            except web3_setup.SetupInvalid as exc:
                raise _invalid(exc) from None

        def validate_web3_asset(self, value):
            try:
                return web3_setup.asset_validate(value)
            except web3_setup.SetupInvalid as exc:
                raise _invalid(exc) from None

        def validate(self, attrs):
            unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
            if unknown:
                raise serializers.ValidationError(
                    {sorted(unknown)[0]: serializers.ErrorDetail("Unknown or read-only parameter.", code="parameter_unknown")}
                )
            account = self.context["account"]
            enabled = attrs.get("enabled_providers", account.enabled_providers or [])
            xpub = attrs.get("web3_xpub", account.web3_xpub)
            asset = attrs.get("web3_asset", account.web3_asset)
            if "web3" in enabled and not (xpub and asset):
                raise serializers.ValidationError({"enabled_providers": serializers.ErrorDetail(
                    "Set web3_xpub and web3_asset before enabling web3.", code="web3_not_configured")})
            return attrs

    @extend_schema(operation_id="get_account", summary="Your merchant account", tags=["account"],
                   parameters=[RETRY_AFTER], responses={200: OutputSerializer, **errors(401, 429)})
    def get(self, request):
        return Response(self.OutputSerializer(request.user).data)

    @extend_schema(operation_id="update_account", summary="Update your invoice details", tags=["account"],
                   request={"application/json": InputSerializer}, parameters=[RETRY_AFTER],
                   responses={200: OutputSerializer, **errors(400, 401, 429)})
    def patch(self, request):
        if not isinstance(request.data, dict):
            return Response({"error": {"code": "body_invalid", "message": "Send a JSON object.", "field": None}}, status=400)
        serializer = self.InputSerializer(data=request.data, context={"account": request.user})
        serializer.is_valid(raise_exception=True)
        account = account_update(account=request.user, actor=f"api_key:{request.auth.pk}", **serializer.validated_data)
        return Response(self.OutputSerializer(account).data)
