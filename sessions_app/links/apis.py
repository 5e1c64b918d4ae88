"""The payment-link endpoints, and POST /create_session as a publishable key may call it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core import currencies
from core.fields import JsonBooleanField
from core.formatting import iso_utc
from core.http import ApiError
from core.openapi import RETRY_AFTER, errors
from core.pagination import PAGE_PARAMETERS, StrictCursorPagination
from keys_app.models import PublishableKey
from keys_app.publishable import origin_allowed_for
from sessions_app.inputs import (
    PROVIDER_CHOICES,
    AmountField,
    EntitlementField,
    HttpUrlField,
    entitlement_clean,
    input_error,
    metadata_clean,
    unknown_parameters_reject,
)
from sessions_app.links import selectors, services

LINK_ID = OpenApiParameter("link_id", str, OpenApiParameter.PATH, description="The link's id, `plink_…`.")


class CustomAmountSerializer(serializers.Serializer):
    min = AmountField(help_text="The lowest amount a buyer may choose.")
    max = AmountField(help_text="The highest amount a buyer may choose.")
    preset = AmountField(required=False, allow_null=True, help_text="Chosen when the buyer names none (default: min).")

    class Meta:
        ref_name = "CustomAmount"


class PaymentLinkSerializer(serializers.Serializer):
    """For the schema; the views answer selectors.link_data."""

    id = serializers.CharField(help_text="`plink_…`")
    object = serializers.ChoiceField(choices=["payment_link"])
    url = serializers.URLField(help_text="`{PUBLIC_BASE_URL}/pay/{slug}`: a plain link that starts a checkout.")
    slug = serializers.CharField()
    active = serializers.BooleanField()
    mode = serializers.ChoiceField(choices=["test", "live"])
    amount = serializers.CharField(allow_null=True, help_text="The fixed price; null for a custom_amount link.")
    currency = serializers.CharField()
    custom_amount = CustomAmountSerializer(allow_null=True)
    description = serializers.CharField(allow_blank=True)
    providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDER_CHOICES),
                                      help_text="Empty: the account's enabled providers at each visit.")
    entitlement = serializers.DictField()
    metadata = serializers.DictField()
    success_url = serializers.CharField(allow_blank=True)
    cancel_url = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "PaymentLink"


class PaymentLinkPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PaymentLinkSerializer(many=True)

    class Meta:
        ref_name = "PaymentLinkPage"


class LinkCreateSerializer(serializers.Serializer):
    amount = AmountField(required=False, allow_null=True,
                         help_text="The fixed price. Leave it out (or null) for a custom_amount link.")
    currency = serializers.CharField(max_length=3, min_length=3, required=False, default="EUR")
    custom_amount = CustomAmountSerializer(required=False, help_text="The buyer chooses the amount within these.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDER_CHOICES), required=False,
                                      allow_empty=False, max_length=len(PROVIDER_CHOICES))
    entitlement = EntitlementField(required=False, encoder=DjangoJSONEncoder)
    metadata = serializers.JSONField(required=False, default=dict, encoder=DjangoJSONEncoder)
    success_url = HttpUrlField(max_length=2000, required=False, allow_blank=True, default="")
    cancel_url = HttpUrlField(max_length=2000, required=False, allow_blank=True, default="")

    class Meta:
        ref_name = "PaymentLinkCreate"

    def validate_currency(self, value: str) -> str:
        if not currencies.is_supported(value.upper()):
            raise input_error("currency_unsupported", f"Currency {value!r} is not supported.")
        return value.upper()

    def validate_metadata(self, value: Any) -> dict[str, Any]:
        return metadata_clean(value)

    def validate_entitlement(self, value: Any) -> dict[str, Any]:
        return entitlement_clean(value)

    def validate(self, attrs):
        unknown_parameters_reject(self)
        return attrs


class LinkUpdateSerializer(serializers.Serializer):
    active = JsonBooleanField(required=False, help_text="false: /pay/{slug} shows that the link is off.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)

    class Meta:
        ref_name = "PaymentLinkUpdate"

    def validate(self, attrs):
        for name in ("amount", "currency", "custom_amount"):
            if name in self.initial_data:
                raise serializers.ValidationError({name: serializers.ErrorDetail(
                    "The price of a payment link never changes: create a new link instead.",
                    code="price_immutable")})
        unknown_parameters_reject(self)
        return attrs


def _body(request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("body_invalid", "The body must be a JSON object.")
    return request.data


def _actor(request) -> str:
    return f"api_key:{request.auth.pk}"


def _link_or_404(request, link_id: str):
    link = selectors.link_get_for_account(account_id=request.user.pk, mode=request.auth.mode, link_id=link_id)
    if link is None:
        raise ApiError("payment_link_not_found", "No such payment link.", status_code=404)
    return link


class PaymentLinkListApi(APIView):
    @extend_schema(operation_id="list_payment_links", summary="List your payment links, newest first",
                   tags=["payment links"],
                   parameters=[OpenApiParameter("active", bool, description="Only active (true) or inactive links."),
                               *PAGE_PARAMETERS, RETRY_AFTER],
                   responses={200: PaymentLinkPageSerializer, **errors(400, 401, 429)})
    def get(self, request):
        raw = request.query_params.get("active")
        if raw not in (None, "true", "false"):
            raise ApiError("active_invalid", "active must be true or false.", field="active")
        paginator = StrictCursorPagination()
        links = selectors.links_list(account_id=request.user.pk, mode=request.auth.mode,
                                     active=None if raw is None else raw == "true")
        page = paginator.paginate_queryset(links, request, self)
        return paginator.get_paginated_response([selectors.link_data(link) for link in page])

    @extend_schema(operation_id="create_payment_link", summary="Create a payment link", tags=["payment links"],
                   description="A published price: each visit of `url` starts a new session at this price, in "
                               "the mode of the key that created the link. Give `amount` for a fixed price or "
                               "`custom_amount` for a buyer-chosen one. The price never changes afterwards.",
                   request={"application/json": LinkCreateSerializer}, parameters=[RETRY_AFTER],
                   responses={201: PaymentLinkSerializer, **errors(400, 401, 429)})
    def post(self, request):
        serializer = LinkCreateSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        link = services.link_create(account=request.user, mode=request.auth.mode, actor=_actor(request),
                                    **serializer.validated_data)
        return Response(selectors.link_data(link), status=201)


class PaymentLinkDetailApi(APIView):
    @extend_schema(operation_id="get_payment_link", summary="Get one payment link", tags=["payment links"],
                   parameters=[LINK_ID, RETRY_AFTER], responses={200: PaymentLinkSerializer, **errors(401, 404, 429)})
    def get(self, request, link_id: str):
        return Response(selectors.link_data(_link_or_404(request, link_id)))

    @extend_schema(operation_id="update_payment_link", summary="Turn a payment link off or on, or edit its "
                   "description", tags=["payment links"],
                   description="Only `active` and `description` change; `amount`, `currency` and `custom_amount` "
                               "answer `400 price_immutable`.",
                   request={"application/json": LinkUpdateSerializer}, parameters=[LINK_ID, RETRY_AFTER],
                   responses={200: PaymentLinkSerializer, **errors(400, 401, 404, 429)})
    def patch(self, request, link_id: str):
        serializer = LinkUpdateSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        link = services.link_update(link=_link_or_404(request, link_id), actor=_actor(request),
                                    **serializer.validated_data)
        return Response(selectors.link_data(link))


# ---------------------------------------------------------------- POST /create_session with a pk_ key

PUBLISHABLE_FIELDS = ("payment_link", "customer_email", "client_reference_id", "amount")


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)) or len(str(value)) > 40:
        raise ApiError("amount_invalid", "amount must be a number or a decimal string.", field="amount")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ApiError("amount_invalid", "amount is not a number.", field="amount") from None


def publishable_create_session(request) -> Response:
    """A session from a payment link of the key's merchant, at the link's price: the page
    chooses the link and may prefill the buyer's email and reference, nothing else."""
    key: PublishableKey = request.auth
    data = _body(request)
    for name in data:
        if name not in PUBLISHABLE_FIELDS:
            raise ApiError("parameter_not_allowed", f"A publishable key may send only payment_link, customer_email, "
                           f"client_reference_id and amount (custom-amount links); not {name!r}. The price and "
                           "everything else come from the payment link.", field=str(name)[:100])
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed_for(account=request.user, origin=origin):
        raise ApiError("origin_not_allowed", f"{origin[:200]} is not in this account's allowed_origins "
                       "(PATCH /account).", status_code=403)
    link_id = data.get("payment_link")
    if not isinstance(link_id, str) or not link_id:
        raise ApiError("payment_link_required", "Send {\"payment_link\": \"plink_…\"}.", field="payment_link")
    link = selectors.link_get_for_account(account_id=key.account_id, mode=key.mode, link_id=link_id)
    if link is None:
        raise ApiError("payment_link_not_found", "No such payment link for this key.", field="payment_link",
                       status_code=404)
    email = data.get("customer_email") or ""
    if not isinstance(email, str) or len(email) > 254:
        raise ApiError("customer_email_invalid", "customer_email is not an email address.", field="customer_email")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ApiError("customer_email_invalid", "customer_email is not an email address.",
                           field="customer_email") from None
    reference = data.get("client_reference_id") or ""
    if not isinstance(reference, str):
        raise ApiError("client_reference_id_invalid", "client_reference_id must be a string.",
                       field="client_reference_id")
    session = services.link_session_start(link=link, actor=f"publishable_key:{key.pk}", customer_email=email,
                                          client_reference_id=reference, amount=_amount(data.get("amount")))
    url = f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}"
    return Response({"session_id": str(session.pk), "url": url, "checkout_url": url, "status": session.status,
                     "amount": str(currencies.in_minor_units(session.amount, session.currency)),
                     "currency": session.currency,
                     "mode": session.mode, "payment_link": link.pk, "expires_at": iso_utc(session.expires_at)},
                    status=201)


PUBLISHABLE_SESSION_SCHEMA = {
    "type": "object", "title": "PublishableSession",
    "description": "What a publishable key is answered: enough to send the buyer to the checkout.",
    "required": ["session_id", "url", "checkout_url", "status", "amount", "currency", "mode", "payment_link",
                 "expires_at"],
    "properties": {
        "session_id": {"type": "string", "format": "uuid"}, "url": {"type": "string", "format": "uri"},
        "checkout_url": {"type": "string", "format": "uri"}, "status": {"type": "string"},
        "amount": {"type": "string"}, "currency": {"type": "string"}, "mode": {"type": "string"},
        "payment_link": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
    },
}
