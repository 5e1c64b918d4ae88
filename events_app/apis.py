"""The API of events and webhook endpoints: X-API-Key auth, the key's mode scopes everything."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.fields import JsonBooleanField
from core.formatting import iso_utc
from core.http import ApiError
from core.openapi import RETRY_AFTER, errors
from core.pagination import PAGE_PARAMETERS, StrictCursorPagination
from events_app import selectors, services
from events_app.models import Delivery, Event, WebhookEndpoint


def _actor(request) -> str:
    return f"api_key:{request.auth.pk}"


def _strict(serializer: serializers.Serializer, attrs: dict) -> dict:
    unknown = set(serializer.initial_data) - set(serializer.fields) if isinstance(serializer.initial_data, dict) \
        else set()
    if unknown:
        raise serializers.ValidationError({sorted(unknown)[0]: serializers.ErrorDetail(
            "Unknown or read-only parameter.", code="parameter_unknown")})
    return attrs


def event_payload(event: Event) -> dict[str, Any]:
    return {"id": event.pk, "type": event.type, "created": iso_utc(event.created_at), "livemode": event.mode == "live",
            "object_id": event.object_id or None, "data": event.data}


def endpoint_payload(endpoint: WebhookEndpoint, *, secret: str | None = None,
                     deliveries: dict[int, Delivery] | None = None) -> dict[str, Any]:
    """`deliveries`: those of an endpoints_list page by id (deliveries_by_id), else it is read here."""
    if deliveries is None:
        last = selectors.endpoint_last_delivery(endpoint_id=endpoint.pk)
    else:
        last = deliveries.get(endpoint.last_delivery_id)
    body = {"id": endpoint.pk, "url": endpoint.url, "description": endpoint.description,
            "event_types": endpoint.event_types, "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason or None, "livemode": endpoint.mode == "live",
            "created": iso_utc(endpoint.created_at),
            "secret_rotation_ends": iso_utc(endpoint.previous_secret_expires_at),
            "last_delivery": None if last is None else {
                "event_id": last.event_id, "status": last.status, "status_code": last.last_status_code,
                "attempts": last.attempts}}
    if secret is not None:
        body["secret"] = secret
    return body


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="evt_…, also the webhook-id header of its deliveries.")
    # `ping` only in the answer of POST /webhook_endpoints/{id}/test; GET /events leaves it out.
    type = serializers.ChoiceField(choices=[*services.EVENT_TYPES, "ping"])
    created = serializers.DateTimeField()
    livemode = serializers.BooleanField()
    object_id = serializers.CharField(allow_null=True)
    data = serializers.DictField(help_text="A snapshot of the object when the event happened.")

    class Meta:
        ref_name = "Event"


class EventPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EventSerializer(many=True)


class LastDeliverySerializer(serializers.Serializer):
    event_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    status_code = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()


class EndpointSerializer(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.URLField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(allow_null=True)
    livemode = serializers.BooleanField()
    created = serializers.DateTimeField()
    secret_rotation_ends = serializers.DateTimeField(
        allow_null=True, help_text="Until then the previous secret signs too (a second signature).")
    last_delivery = LastDeliverySerializer(allow_null=True)

    class Meta:
        ref_name = "WebhookEndpoint"


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_…: shown this once; verify signatures with it.")

    class Meta:
        ref_name = "WebhookEndpointWithSecret"


class EndpointPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EndpointSerializer(many=True)


class EndpointCreateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2048)
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=50,
                                        help_text='Event types, or ["*"] for all.')
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        return _strict(self, attrs)


class EndpointUpdateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2048, required=False)
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=50,
                                        required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = JsonBooleanField(required=False, help_text="true re-enables a disabled endpoint.")

    def validate(self, attrs):
        return _strict(self, attrs)


def _page(view: APIView, request, queryset, payloads: Callable[[list], list[dict[str, Any]]]) -> Response:
    paginator = StrictCursorPagination()
    page = paginator.paginate_queryset(queryset, request, view)
    return paginator.get_paginated_response(payloads(page))


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ApiError("body_invalid", "Send a JSON object.")
    return request.data


ENDPOINT_ID = OpenApiParameter("endpoint_id", str, OpenApiParameter.PATH, description="we_…")
EVENT_ID = OpenApiParameter("event_id", str, OpenApiParameter.PATH, description="evt_…")
_TIME_SCHEMA = {"type": "string", "format": "date-time"}
EVENT_LIST_PARAMETERS = [
    OpenApiParameter("type", {"type": "string", "enum": list(services.EVENT_TYPES)},
                     description="Only events of this type; another value is `400 type_invalid`."),
    OpenApiParameter("created_gte", _TIME_SCHEMA, description="Only events created at or after this RFC 3339 time "
                                                              "(with its offset, e.g. `2026-01-31T12:00:00Z`)."),
    OpenApiParameter("created_lt", _TIME_SCHEMA, description="Only events created before this RFC 3339 time."),
    *PAGE_PARAMETERS,
]


def _endpoint_or_404(request, endpoint_id: str) -> WebhookEndpoint:
    endpoint = selectors.endpoint_get(account_id=request.user.pk, mode=request.auth.mode, endpoint_id=endpoint_id)
    if endpoint is None:
        raise ApiError("webhook_endpoint_not_found", "No such webhook endpoint.", status_code=404)
    return endpoint


# RFC 3339 date-time, what the schema's `format: date-time` means: Django's parser alone also takes
# a space for the T, a missing offset or the basic format, none of which the schema allows.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE | re.ASCII)


def _time(request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = parse_datetime(raw.upper()) if _RFC3339.fullmatch(raw) else None
    except ValueError:
        value = None
    if value is None:
        raise ApiError(f"{name}_invalid", f"{name} must be an RFC 3339 time with its offset, e.g. "
                       "2026-01-31T12:00:00Z.", field=name)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+05:00 is before the first UTC instant a datetime holds (and the
        # other way round at 9999): the bound then excludes nothing.
        return datetime.min.replace(tzinfo=UTC) if value.year == 1 else datetime.max.replace(tzinfo=UTC)


class EventListApi(APIView):
    @extend_schema(operation_id="list_events", summary="List your events of the key's mode, newest first",
                   description="Events are kept 30 days: a merchant whose server was down recovers from here.",
                   tags=["events"], parameters=[*EVENT_LIST_PARAMETERS, RETRY_AFTER],
                   responses={200: EventPageSerializer, **errors(400, 401, 429)})
    def get(self, request):
        type_ = request.query_params.get("type")
        if type_ is not None and type_ not in services.EVENT_TYPES:
            raise ApiError("type_invalid", "type is not an event type.", field="type")
        events = selectors.events_list(account_id=request.user.pk, mode=request.auth.mode, type=type_,
                                       created_gte=_time(request, "created_gte"),
                                       created_lt=_time(request, "created_lt"))
        return _page(self, request, events, lambda page: [event_payload(event) for event in page])


class EventDetailApi(APIView):
    @extend_schema(operation_id="get_event", summary="Get one event", tags=["events"],
                   parameters=[EVENT_ID, RETRY_AFTER], responses={200: EventSerializer, **errors(401, 404, 429)})
    def get(self, request, event_id: str):
        event = selectors.event_get(account_id=request.user.pk, mode=request.auth.mode, event_id=event_id)
        if event is None:
            raise ApiError("event_not_found", "No such event.", status_code=404)
        return Response(event_payload(event))


class EndpointListApi(APIView):
    @extend_schema(operation_id="list_webhook_endpoints", summary="List your webhook endpoints of the key's mode",
                   tags=["webhook endpoints"], parameters=[*PAGE_PARAMETERS, RETRY_AFTER],
                   responses={200: EndpointPageSerializer, **errors(400, 401, 429)})
    def get(self, request):
        def payloads(page: list[WebhookEndpoint]) -> list[dict[str, Any]]:
            deliveries = selectors.deliveries_by_id(endpoint.last_delivery_id for endpoint in page)
            return [endpoint_payload(endpoint, deliveries=deliveries) for endpoint in page]

        return _page(self, request, selectors.endpoints_list(account_id=request.user.pk, mode=request.auth.mode),
                     payloads)

    @extend_schema(operation_id="create_webhook_endpoint", summary="Add a webhook endpoint",
                   description="Events of the key's mode are POSTed to `url`, signed per Standard Webhooks with "
                               "the `secret` returned here once. Live mode: https only, and never a loopback, "
                               "private, link-local or metadata address.",
                   tags=["webhook endpoints"], request={"application/json": EndpointCreateSerializer},
                   parameters=[RETRY_AFTER], responses={201: EndpointWithSecretSerializer, **errors(400, 401, 429)})
    def post(self, request):
        serializer = EndpointCreateSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        endpoint, secret = services.endpoint_create(account_id=request.user.pk, mode=request.auth.mode,
                                                    actor=_actor(request), **serializer.validated_data)
        return Response(endpoint_payload(endpoint, secret=secret), status=201)


class EndpointDetailApi(APIView):
    @extend_schema(operation_id="get_webhook_endpoint", summary="Get one webhook endpoint", tags=["webhook endpoints"],
                   parameters=[ENDPOINT_ID, RETRY_AFTER], responses={200: EndpointSerializer, **errors(401, 404, 429)})
    def get(self, request, endpoint_id: str):
        return Response(endpoint_payload(_endpoint_or_404(request, endpoint_id)))

    @extend_schema(operation_id="update_webhook_endpoint", summary="Change a webhook endpoint's URL, types or state",
                   tags=["webhook endpoints"], request={"application/json": EndpointUpdateSerializer},
                   parameters=[ENDPOINT_ID, RETRY_AFTER],
                   responses={200: EndpointSerializer, **errors(400, 401, 404, 429)})
    def patch(self, request, endpoint_id: str):
        endpoint = _endpoint_or_404(request, endpoint_id)
        serializer = EndpointUpdateSerializer(data=_body(request))
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, actor=_actor(request), **serializer.validated_data)
        return Response(endpoint_payload(endpoint))

    @extend_schema(operation_id="delete_webhook_endpoint", summary="Delete a webhook endpoint",
                   tags=["webhook endpoints"], parameters=[ENDPOINT_ID, RETRY_AFTER],
                   responses={204: None, **errors(401, 404, 429)})
    def delete(self, request, endpoint_id: str):
        services.endpoint_delete(endpoint=_endpoint_or_404(request, endpoint_id), actor=_actor(request))
        return Response(status=204)


class EndpointRotateSecretApi(APIView):
    @extend_schema(operation_id="rotate_webhook_endpoint_secret", summary="Replace the signing secret",
                   description="Returns the new secret once. For 24 hours the previous secret signs too: each "
                               "delivery carries both signatures in `webhook-signature`.",
                   tags=["webhook endpoints"], request=None, parameters=[ENDPOINT_ID, RETRY_AFTER],
                   responses={200: EndpointWithSecretSerializer, **errors(401, 404, 429)})
    def post(self, request, endpoint_id: str):
        endpoint, secret = services.endpoint_rotate_secret(endpoint=_endpoint_or_404(request, endpoint_id),
                                                           actor=_actor(request))
        return Response(endpoint_payload(endpoint, secret=secret))


class EndpointTestApi(APIView):
    @extend_schema(operation_id="test_webhook_endpoint", summary="Send a ping event to the endpoint now",
                   tags=["webhook endpoints"], request=None, parameters=[ENDPOINT_ID, RETRY_AFTER],
                   responses={202: EventSerializer, **errors(401, 404, 429)})
    def post(self, request, endpoint_id: str):
        delivery = services.endpoint_send_test(endpoint=_endpoint_or_404(request, endpoint_id),
                                               actor=_actor(request))
        return Response(event_payload(delivery.event), status=202)
