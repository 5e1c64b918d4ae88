from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core import errors as domain_errors
from core import throttling
from core.formatting import iso_utc
from core.http import ApiError
from core.openapi import RETRY_AFTER, errors
from core.pagination import StrictCursorPagination
from keys_app import entitlements, publishable, selectors, web3_setup
from keys_app.models import PROVIDERS, TEST_EMAIL_RECIPIENTS_MAX, Account, EntitlementKey, Mode
from keys_app.openapi import (
    KEY_ID,
    KEY_LIST_PARAMETERS,
    KeyPageSerializer,
    KeySerializer,
    OverlapInputSerializer,
    ReplacedKeySerializer,
    VerificationSerializer,
)
from keys_app.services import account_update

_ASSET_COMMON = {
    "symbol": {"type": "string", "pattern": "^[A-Za-z0-9]{1,11}$", "example": "ETH",
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
                                    "description": "The token contract (mixed case: a valid EIP-55 checksum)."},
                        "currency": {"type": "string", "nullable": True, "pattern": "^[A-Za-z]{3}$",
                                     "example": "EUR",
                                     "description": "A stablecoin's ISO 4217 currency: priced 1:1 in it only; "
                                                    "null or absent for none."}},
         "required": ["type", "symbol", "decimals", "address"]},
    ],
    "description": "The asset customers pay in; null for none.",
})
class Web3AssetField(serializers.JSONField):
    pass


@extend_schema_field({
    "oneOf": [{"type": "string", "pattern": r"^(100(\.0{1,2})?|\d{1,2}(\.\d{1,2})?)$", "example": "25.5"},
              {"type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.01}],
    "description": "Percent, 0 to 100 with at most 2 decimals, as a decimal string or a JSON number.",
})
class VatRateField(serializers.DecimalField):
    pass


def _invalid(exc: web3_setup.SetupInvalid) -> serializers.ValidationError:
    # Raised from validate_<field>: DRF files it under that field already.
    return serializers.ValidationError(serializers.ErrorDetail(str(exc), code=exc.code))


class AccountApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        enabled_providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDERS))
        web3_asset = Web3AssetField(allow_null=True)
        allowed_origins = serializers.ListField(
            child=serializers.CharField(),
            help_text="Origins whose pages may call POST /create_session with your publishable key.")
        publishable_key = serializers.SerializerMethodField(
            help_text="Your publishable key of this key's mode (`pk_test_…` / `pk_live_…`): for web pages, "
                      "with a payment link only.")

        class Meta:
            model = Account
            fields = ["id", "name", "email", "address", "vat_id", "vat_rate", "invoice_prefix", "created_at",
                      "enabled_providers", "web3_xpub", "web3_asset", "issued_key_mode", "email_key_to_customer",
                      "allowed_origins", "publishable_key", "refund_revokes_key",
                      "test_email_recipients"]

        def get_publishable_key(self, account: Account) -> str:
            return publishable.publishable_key_ensure(account=account, mode=self.context["mode"]).key

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        email = serializers.EmailField(max_length=254, required=False)
        address = serializers.CharField(max_length=1000, required=False, allow_blank=True)
        vat_id = serializers.RegexField(r"^[A-Za-z0-9 .-]{0,32}$", required=False, allow_blank=True)
        vat_rate = VatRateField(max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False)
        invoice_prefix = serializers.RegexField(r"^[A-Z0-9][A-Z0-9-]{0,11}$", required=False)
        enabled_providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDERS), required=False,
                                                  allow_empty=False, max_length=len(PROVIDERS))
        web3_xpub = serializers.CharField(max_length=200, required=False, allow_blank=True)
        # JSON numbers arrive as Decimal (parsers.py): let them through to asset_validate, which names the problem.
        web3_asset = Web3AssetField(required=False, allow_null=True, encoder=DjangoJSONEncoder)
        issued_key_mode = serializers.ChoiceField(
            choices=Mode.choices, required=False,
            help_text="The mode of the entitlement keys issued to your buyers from now on (test by default).")
        email_key_to_customer = serializers.BooleanField(
            required=False, help_text="Put the buyer's key itself into the receipt email (off by default).")
        allowed_origins = serializers.ListField(
            child=serializers.CharField(max_length=200), required=False, max_length=publishable.MAX_ALLOWED_ORIGINS,
            help_text="Origins (scheme://host[:port]) whose pages may call POST /create_session with your "
                      "publishable key; the browser blocks every other origin.")

        def validate_allowed_origins(self, value):
            try:
                return publishable.allowed_origins_clean(value)
            except domain_errors.DomainError as exc:
                raise serializers.ValidationError(serializers.ErrorDetail(exc.message, code=exc.code)) from None

        refund_revokes_key = serializers.BooleanField(
            required=False, help_text="A full refund revokes the buyer's key (on by default; a refund's "
                                      "`revoke_key` overrides it).")

        test_email_recipients = serializers.ListField(
            child=serializers.EmailField(max_length=254), required=False, allow_empty=True,
            max_length=TEST_EMAIL_RECIPIENTS_MAX,
            help_text="Test mode mails customers only at your own email and at these addresses (at most "
                      f"{TEST_EMAIL_RECIPIENTS_MAX}); mail for anyone else is printed to the log instead.")

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
        return Response(self.OutputSerializer(request.user, context={"mode": request.auth.mode}).data)

    @extend_schema(operation_id="update_account", summary="Update your invoice details", tags=["account"],
                   request={"application/json": InputSerializer}, parameters=[RETRY_AFTER],
                   responses={200: OutputSerializer, **errors(400, 401, 409, 429)})
    def patch(self, request):
        if not isinstance(request.data, dict):
            return Response({"error": {"code": "body_invalid", "message": "Send a JSON object.", "field": None}}, status=400)
        serializer = self.InputSerializer(data=request.data, context={"account": request.user})
        serializer.is_valid(raise_exception=True)
        account = account_update(account=request.user, actor=f"api_key:{request.auth.pk}", **serializer.validated_data)
        return Response(self.OutputSerializer(account, context={"mode": request.auth.mode}).data)


class PublishableKeyRotateApi(APIView):
    class OutputSerializer(serializers.Serializer):
        publishable_key = serializers.CharField(help_text="The new key; the old one stopped working.")
        mode = serializers.ChoiceField(choices=Mode.values)

    @extend_schema(operation_id="rotate_publishable_key", summary="Replace your publishable key", tags=["account"],
                   description="Replaces the publishable key of this secret key's mode. The old one stops at once: "
                               "update your pages first.",
                   request=None, parameters=[RETRY_AFTER], responses={200: OutputSerializer, **errors(401, 429)})
    def post(self, request):
        key = publishable.publishable_key_rotate(account=request.user, mode=request.auth.mode,
                                                 actor=f"api_key:{request.auth.pk}")
        return Response({"publishable_key": key.key, "mode": key.mode})


# ---------------------------------------------------------------- entitlement keys


def verified_key_payload(key: EntitlementKey) -> dict[str, Any]:
    return {"id": str(key.pk), "mode": key.mode, "session_id": str(key.session_id),
            "customer_email": key.customer_email, "created_at": iso_utc(key.created_at),
            "expires_at": iso_utc(key.expires_at), "metadata": key.metadata}


def key_payload(key: EntitlementKey) -> dict[str, Any]:
    return {**verified_key_payload(key), "display": key.display, "status": key.status,
            "revoked_at": iso_utc(key.revoked_at), "refunded_at": iso_utc(key.refunded_at),
            "replaces": str(key.replaces_id) if key.replaces_id else None,
            "superseded_by": str(key.superseded_by_id) if key.superseded_by_id else None,
            "superseded_at": iso_utc(key.superseded_at)}


def _actor(request) -> str:
    return f"api_key:{request.auth.pk}"


def _key_or_404(request, key_id: str) -> EntitlementKey:
    key = selectors.entitlement_key_get_for_account(account_id=request.user.pk, key_id=key_id)
    if key is None:
        raise ApiError("key_not_found", "No such key.", status_code=404)
    return key


class KeyListApi(APIView):
    @extend_schema(operation_id="list_keys", summary="List the entitlement keys issued to your buyers, newest first",
                   tags=["keys"], parameters=[*KEY_LIST_PARAMETERS, RETRY_AFTER],
                   responses={200: KeyPageSerializer, **errors(400, 401, 429)})
    def get(self, request):
        session_id = request.query_params.get("session_id")
        if session_id:
            try:
                session_id = uuid.UUID(session_id)
            except ValueError:
                raise ApiError("session_id_invalid", "session_id is not a session id.", field="session_id") from None
        customer_email = request.query_params.get("customer_email") or None
        if customer_email is not None and (len(customer_email) > 254 or "\x00" in customer_email):
            raise ApiError("customer_email_invalid", "customer_email is not an email address.",
                           field="customer_email")
        paginator = StrictCursorPagination()
        keys = selectors.entitlement_keys_list(account_id=request.user.pk, session_id=session_id or None,
                                               customer_email=customer_email)
        page = paginator.paginate_queryset(keys, request, self)
        return paginator.get_paginated_response([key_payload(k) for k in page])


class KeyDetailApi(APIView):
    @extend_schema(operation_id="get_key", summary="Get one entitlement key", tags=["keys"],
                   parameters=[KEY_ID, RETRY_AFTER], responses={200: KeySerializer, **errors(401, 404, 429)})
    def get(self, request, key_id: str):
        return Response(key_payload(_key_or_404(request, key_id)))


class KeyRevokeApi(APIView):
    @extend_schema(operation_id="revoke_key", summary="Revoke an entitlement key now", tags=["keys"],
                   description="From now on it verifies as `revoked`, on every worker. Revoking twice changes "
                               "nothing.",
                   request=None, parameters=[KEY_ID, RETRY_AFTER],
                   responses={200: KeySerializer, **errors(401, 404, 429)})
    def post(self, request, key_id: str):
        key = entitlements.entitlement_key_revoke(key=_key_or_404(request, key_id), actor=_actor(request))
        return Response(key_payload(key))


def _overlap(request) -> timedelta:
    data = request.data if isinstance(request.data, dict) else None
    if data is None:
        raise ApiError("body_invalid", "The body must be a JSON object.")
    serializer = OverlapInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    hours = serializer.validated_data.get("overlap_hours")
    return entitlements.ENTITLEMENT_ROTATION_OVERLAP if hours is None else timedelta(hours=hours)


def _replaced(issued: entitlements.IssuedEntitlementKey, old: EntitlementKey) -> Response:
    old.refresh_from_db()
    response = Response({"key": key_payload(issued.key), "plaintext": issued.plaintext,
                         "previous": key_payload(old)}, status=201)
    # The plain key is in this one response only.
    response["Cache-Control"] = "no-store"
    return response


class KeyRotateApi(APIView):
    @extend_schema(operation_id="rotate_key", summary="Replace an entitlement key with a new one", tags=["keys"],
                   description="The new key is in this response only (`plaintext`). The old key keeps verifying "
                               "for `overlap_hours` (24 by default; 0 stops it now) and then verifies as "
                               "`expired`. `409` for a revoked, refunded, expired or already replaced key.",
                   request={"application/json": OverlapInputSerializer}, parameters=[KEY_ID, RETRY_AFTER],
                   responses={201: ReplacedKeySerializer, **errors(400, 401, 404, 409, 429)})
    def post(self, request, key_id: str):
        key = _key_or_404(request, key_id)
        issued = entitlements.entitlement_key_rotate(key=key, overlap=_overlap(request), actor=_actor(request))
        return _replaced(issued, key)


class KeyUpgradeApi(APIView):
    @extend_schema(operation_id="upgrade_key", summary="Upgrade a test entitlement key to a live one", tags=["keys"],
                   description="Issues a live key carrying the same purchase, in this response only (`plaintext`). "
                               "The test key keeps verifying for `overlap_hours` (24 by default). `409` for a key "
                               "that is already live, revoked, refunded, expired or replaced.",
                   request={"application/json": OverlapInputSerializer}, parameters=[KEY_ID, RETRY_AFTER],
                   responses={201: ReplacedKeySerializer, **errors(400, 401, 404, 409, 429)})
    def post(self, request, key_id: str):
        key = _key_or_404(request, key_id)
        issued = entitlements.entitlement_key_upgrade(key=key, overlap=_overlap(request), actor=_actor(request))
        return _replaced(issued, key)


class KeyVerifyApi(APIView):
    throttle_classes = throttling.VERIFY_THROTTLES

    class InputSerializer(serializers.Serializer):
        """For the schema; the view reads the body itself (a malformed key is an answer, not an error)."""

        # Any text is an answer (`unknown`) but NUL, which no JSON body may hold here (400).
        key = serializers.RegexField(r"^[^\x00]*$", allow_blank=True,
                                     help_text="The key your customer presented, `ek_test_…` or `ek_live_…`.")

    @extend_schema(operation_id="verify_key", summary="Verify a key your customer presented", tags=["keys"],
                   description="Call it from your own service for each request it serves. `valid` is true only "
                               "for `code` `valid`. A key of another merchant, a key that does not exist and a "
                               "malformed key all answer `unknown` (with `key` null). `wrong_mode`: a test key "
                               "checked with a live secret key, or the other way round.",
                   request={"application/json": InputSerializer}, parameters=[RETRY_AFTER],
                   responses={200: VerificationSerializer, **errors(400, 401, 429)})
    def post(self, request):
        raw = request.data.get("key") if isinstance(request.data, dict) else None
        if not isinstance(raw, str):
            raise ApiError("key_required", "Send {\"key\": \"ek_…\"}.", field="key")
        result = entitlements.entitlement_key_verify(account_id=request.user.pk, mode=request.auth.mode, raw=raw)
        return Response({"valid": result.valid, "code": result.code,
                         "key": verified_key_payload(result.key) if result.key else None})
