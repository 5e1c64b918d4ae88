from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from keys_app.models import Account
from keys_app.services import account_update
from payments_site.openapi import RETRY_AFTER, errors


class AccountApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Account
            fields = ["id", "name", "email", "address", "vat_id", "vat_rate", "invoice_prefix", "created_at"]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        email = serializers.EmailField(required=False)
        address = serializers.CharField(max_length=1000, required=False, allow_blank=True)
        vat_id = serializers.RegexField(r"^[A-Za-z0-9 .-]{0,32}$", required=False, allow_blank=True)
        vat_rate = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False)
        invoice_prefix = serializers.RegexField(r"^[A-Z0-9][A-Z0-9-]{0,11}$", required=False)

        def validate(self, attrs):
            unknown = set(self.initial_data) - set(self.fields) if isinstance(self.initial_data, dict) else set()
            if unknown:
                raise serializers.ValidationError(
                    {sorted(unknown)[0]: serializers.ErrorDetail("This field is not editable.", code="field_unknown")}
                )
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
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = account_update(account=request.user, actor=f"api_key:{request.auth.pk}", **serializer.validated_data)
        return Response(self.OutputSerializer(account).data)
