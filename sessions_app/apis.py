from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from payments_site.errors import ApiError
from sessions_app import currencies, selectors
from sessions_app.models import PaymentSession, Status
from sessions_app.services import idempotent, request_fingerprint, session_create, session_expire

PROVIDER_CHOICES = ["stripe"]
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LEN = 40
METADATA_MAX_VALUE_LEN = 500


def _error(code: str, message: str) -> serializers.ValidationError:
    return serializers.ValidationError(serializers.ErrorDetail(message, code=code))


class AmountField(serializers.Field):
    """A positive decimal amount, as a JSON number or a string; never a float."""

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (int, str, Decimal)):
            raise _error("amount_invalid", "amount must be a number or a decimal string.")
        try:
            value = Decimal(str(data).strip())
        except InvalidOperation:
            raise _error("amount_invalid", "amount is not a number.") from None
        if not value.is_finite():
            raise _error("amount_invalid", "amount must be finite.")
        if value <= 0:
            raise _error("amount_not_positive", "amount must be greater than zero.")
        if value > settings.SESSION_MAX_AMOUNT:
            raise _error("amount_too_large", f"amount may be at most {settings.SESSION_MAX_AMOUNT}.")
        return value

    def to_representation(self, value: Decimal) -> str:
        return str(value)


class HttpUrlField(serializers.URLField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value and not value.lower().startswith(("http://", "https://")):
            raise _error("invalid", "Only http(s) URLs are allowed.")
        return value


def session_payload(session: PaymentSession) -> dict[str, Any]:
    url = f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}"
    exp = currencies.exponent(session.currency)
    amount = session.amount.quantize(Decimal(1).scaleb(-exp))
    return {
        "session_id": str(session.pk),
        "checkout_url": url,
        "url": url,
        "status": session.status,
        "amount": str(amount),
        "amount_minor": currencies.to_minor(session.amount, session.currency),
        "currency": session.currency,
        "mode": session.mode,
        "providers": session.providers,
        "description": session.description,
        "customer_email": session.customer_email,
        "metadata": session.metadata,
        "client_reference_id": session.client_reference_id,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "created_at": session.created_at.isoformat().replace("+00:00", "Z"),
        "expires_at": session.expires_at.isoformat().replace("+00:00", "Z"),
        "failure_reason": session.failure_reason,
        "provider": session.provider,
        "provider_reference": session.provider_reference,
        "paid_at": session.paid_at.isoformat().replace("+00:00", "Z") if session.paid_at else None,
    }


class CreateSessionApi(APIView):
    class InputSerializer(serializers.Serializer):
        amount = AmountField()
        currency = serializers.CharField(max_length=3, min_length=3, required=False, default="EUR")
        mode = serializers.ChoiceField(choices=["test", "live"], required=False)
        description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
        customer_email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")
        metadata = serializers.JSONField(required=False, default=dict)
        client_reference_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        success_url = HttpUrlField(max_length=2000, required=False, allow_blank=True, default="")
        cancel_url = HttpUrlField(max_length=2000, required=False, allow_blank=True, default="")
        expires_at = serializers.JSONField(required=False)
        providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDER_CHOICES), required=False,
                                          allow_empty=False, max_length=3)

        def validate_currency(self, value: str) -> str:
            code = value.upper()
            if not currencies.is_supported(code):
                raise _error("currency_unsupported", f"Currency {value!r} is not supported.")
            return code

        def validate_metadata(self, value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise _error("metadata_invalid", "metadata must be a JSON object.")
            if len(value) > METADATA_MAX_KEYS:
                raise _error("metadata_too_large", f"metadata may have at most {METADATA_MAX_KEYS} keys.")
            for key, item in value.items():
                if len(key) > METADATA_MAX_KEY_LEN:
                    raise _error("metadata_invalid", f"metadata keys may be at most {METADATA_MAX_KEY_LEN} characters.")
                if isinstance(item, (dict, list)) or item is None:
                    raise _error("metadata_invalid", "metadata values must be strings, numbers or booleans.")
                if len(str(item)) > METADATA_MAX_VALUE_LEN:
                    raise _error("metadata_too_large",
                                 f"metadata values may be at most {METADATA_MAX_VALUE_LEN} characters.")
            return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in value.items()}

        def validate_expires_at(self, value: Any) -> datetime:
            if isinstance(value, bool):
                raise _error("expires_at_invalid", "expires_at must be a unix timestamp or an ISO 8601 time.")
            try:
                if isinstance(value, (int, Decimal)):
                    moment = datetime.fromtimestamp(int(value), tz=UTC)
                elif isinstance(value, str):
                    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                    if timezone.is_naive(moment):
                        raise ValueError
                else:
                    raise ValueError
            except (ValueError, OverflowError, OSError):
                raise _error("expires_at_invalid", "expires_at must be a unix timestamp or an ISO 8601 time with zone.") from None
            now = timezone.now()
            # A minute of leeway for the caller's clock and the request's travel time.
            low = now + timedelta(seconds=settings.SESSION_MIN_TTL_SECONDS - 60)
            high = now + timedelta(seconds=settings.SESSION_MAX_TTL_SECONDS + 60)
            if not low <= moment <= high:
                raise _error("expires_at_out_of_range", "expires_at must be between 30 minutes and 24 hours from now.")
            return moment

        def validate(self, attrs):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: serializers.ErrorDetail(f"Unknown parameter {unknown[0]!r}.", code="parameter_unknown")}
                )
            exp = currencies.exponent(attrs["currency"])
            if -attrs["amount"].normalize().as_tuple().exponent > exp:
                raise serializers.ValidationError({"amount": serializers.ErrorDetail(
                    f"{attrs['currency']} amounts have at most {exp} decimal places.", code="amount_precision")})
            return attrs

    def post(self, request):
        if not isinstance(request.data, dict):
            raise ApiError("body_invalid", "The body must be a JSON object.")
        account, api_key = request.user, request.auth

        def produce() -> tuple[int, dict[str, Any]]:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            session = session_create(account=account, api_key=api_key, **serializer.validated_data)
            return 201, session_payload(session)

        key = request.headers.get("Idempotency-Key")
        stored = idempotent(
            account=account,
            key=key,
            # Only a request with a key is ever compared with another.
            fingerprint=request_fingerprint(json.loads(json.dumps(request.data, default=str))) if key else "",
            produce=produce,
        )
        response = Response(stored.body, status=stored.status_code)
        if stored.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class SessionPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100


class SessionListApi(APIView):
    def get(self, request):
        status = request.query_params.get("status")
        if status and status not in Status.values:
            raise ApiError("status_invalid", f"status must be one of {', '.join(Status.values)}.", field="status")
        paginator = SessionPagination()
        page = paginator.paginate_queryset(selectors.session_list(account=request.user, status=status), request, self)
        return paginator.get_paginated_response([session_payload(s) for s in page])


class SessionDetailApi(APIView):
    def get(self, request, session_id: str):
        session = selectors.session_get_for_account(account=request.user, session_id=session_id)
        if session is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        return Response(session_payload(session))


class SessionExpireApi(APIView):
    def post(self, request, session_id: str):
        session = selectors.session_get_for_account(account=request.user, session_id=session_id)
        if session is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        session = session_expire(session_id=session.pk, actor=f"api_key:{request.auth.pk}")
        return Response(session_payload(session))


class SessionStatusApi(APIView):
    """Public: anyone holding the id may poll it. No customer data."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request, session_id: str):
        row = selectors.session_status_get(session_id=session_id)
        if row is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        paid_at = row["paid_at"]
        return Response({"id": str(row["id"]), "session_id": str(row["id"]), "status": row["status"],
                         "paid_at": paid_at.isoformat().replace("+00:00", "Z") if paid_at else None})
