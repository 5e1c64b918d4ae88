from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core import currencies, throttling
from core.formatting import iso_utc
from core.http import ApiError
from core.openapi import IDEMPOTENCY_KEY, RETRY_AFTER, errors
from core.pagination import StrictCursorPagination
from keys_app.models import PublishableKey
from sessions_app import selectors
from sessions_app.crypto import services as crypto
from sessions_app.crypto.chain import ChainMismatch, ChainUnavailable
from sessions_app.crypto.services import web3_public
from sessions_app.inputs import (
    PROVIDER_CHOICES,
    AmountField,
    EntitlementField,
    HttpUrlField,
    entitlement_clean,
    input_error,
    metadata_clean,
    plain_create_input,
    unknown_parameters_reject,
)
from sessions_app.links.apis import publishable_create_session
from sessions_app.models import PaymentSession, Status
from sessions_app.openapi import (
    LIST_PARAMETERS,
    SESSION_ID,
    SessionPageSerializer,
    SessionSerializer,
    SessionStatusSerializer,
    Web3TxResultSerializer,
)
from sessions_app.services import idempotent, request_fingerprint, session_create, session_expire, session_fulfil_anyway


def session_payload(session: PaymentSession, *, with_web3: bool = False) -> dict[str, Any]:
    url = f"{settings.PUBLIC_BASE_URL}/checkout?session={session.pk}"
    payload = {
        "session_id": str(session.pk),
        "checkout_url": url,
        "url": url,
        "status": session.status,
        "amount": str(currencies.in_minor_units(session.amount, session.currency)),
        "amount_minor": currencies.to_minor(session.amount, session.currency),
        "currency": session.currency,
        "mode": session.mode,
        "providers": session.providers,
        "description": session.description,
        "customer_email": session.customer_email,
        "metadata": session.metadata,
        "entitlement": {"expires_in_days": (session.entitlement or {}).get("expires_in_days"),
                        "metadata": (session.entitlement or {}).get("metadata") or {}},
        "client_reference_id": session.client_reference_id,
        "payment_link": session.payment_link_id,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
        "created_at": iso_utc(session.created_at),
        "expires_at": iso_utc(session.expires_at),
        "failure_reason": session.failure_reason,
        "provider": session.provider,
        "provider_reference": session.provider_reference,
        "paid_at": iso_utc(session.paid_at),
        "payment_attempts_failed": session.payment_attempts_failed,
        "last_payment_error": ({"code": session.last_payment_error_code,
                                "message": session.last_payment_error_message,
                                "at": iso_utc(session.last_payment_error_at)}
                               if session.payment_attempts_failed else None),
        # Read only when there is one: a list of sessions costs no extra query.
        "late_payments": ([{"amount": str(late.amount) if late.amount is not None else None,
                            "currency": late.currency, "provider": late.provider,
                            "provider_reference": late.provider_reference, "received_at": iso_utc(late.received_at)}
                           for late in selectors.late_payments_of(session=session)]
                          if session.late_payment_at else []),
        "fulfil_anyway": ({"at": iso_utc(session.fulfil_anyway_at), "by": session.fulfil_anyway_by}
                          if session.fulfil_anyway_at else None),
        "amount_refunded": str(currencies.in_minor_units(Decimal(session.amount_refunded), session.currency)),
        "refund_status": session.refund_status,
    }
    if with_web3 and "web3" in session.providers:

        payload["web3"] = web3_public(session=session)
    return payload


def idempotent_response(request, *, scope: dict[str, Any],
                        produce: Callable[[], tuple[int, dict[str, Any]]]) -> Response:
    """`produce` once per Idempotency-Key; a repeat with the same body and `scope` gets the first answer."""
    key = request.headers.get("Idempotency-Key")
    # Only a request with a key is ever compared with another.
    fingerprint = (request_fingerprint({**scope, "body": json.loads(json.dumps(request.data, default=str))})
                   if key else "")
    stored = idempotent(account=request.user, key=key, fingerprint=fingerprint, produce=produce)
    response = Response(stored.body, status=stored.status_code)
    if stored.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


class CreateSessionApi(APIView):
    # A secret key, or a publishable key (pk_…) with {"payment_link": …}: see sessions_app/links.
    accepts_publishable_key = True
    throttle_classes = throttling.CREATE_SESSION_THROTTLES

    def get_throttles(self):
        if isinstance(self.request.auth, PublishableKey):
            # Anyone may hold a publishable key: limited per client IP and per link, like /pay.
            return [cls() for cls in throttling.PAY_LINK_THROTTLES]
        return super().get_throttles()

    class InputSerializer(serializers.Serializer):
        amount = AmountField()
        currency = serializers.CharField(max_length=3, min_length=3, required=False, default="EUR")
        mode = serializers.ChoiceField(choices=["test", "live"], required=False)
        description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
        customer_email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")
        # JSON numbers arrive as Decimal (see parsers.py); they are stored as strings below.
        metadata = serializers.JSONField(required=False, default=dict, encoder=DjangoJSONEncoder)
        entitlement = EntitlementField(required=False, encoder=DjangoJSONEncoder,
                                       help_text="What the buyer's entitlement key carries.")
        client_reference_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        success_url = HttpUrlField(max_length=2000, required=False, allow_blank=True, default="")
        cancel_url = HttpUrlField(max_length=2000, required=False, allow_blank=True, default="")
        expires_at = serializers.JSONField(required=False)
        providers = serializers.ListField(child=serializers.ChoiceField(choices=PROVIDER_CHOICES), required=False,
                                          allow_empty=False, max_length=len(PROVIDER_CHOICES))

        def validate_providers(self, value: list[str]) -> list[str]:
            enabled = self.context["account"].enabled_providers or ["stripe"]
            for name in value:
                if name not in enabled:
                    raise input_error("provider_not_enabled",
                                 f"{name} is not enabled for this account (PATCH /account enabled_providers).")
            return [name for name in PROVIDER_CHOICES if name in value]

        def validate_currency(self, value: str) -> str:
            code = value.upper()
            if not currencies.is_supported(code):
                raise input_error("currency_unsupported", f"Currency {value!r} is not supported.")
            return code

        def validate_metadata(self, value: Any) -> dict[str, Any]:
            return metadata_clean(value)

        def validate_entitlement(self, value: Any) -> dict[str, Any]:
            return entitlement_clean(value)

        def validate_expires_at(self, value: Any) -> datetime:
            if isinstance(value, bool):
                raise input_error("expires_at_invalid", "expires_at must be a unix timestamp or an ISO 8601 time.")
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
                raise input_error("expires_at_invalid", "expires_at must be a unix timestamp or an ISO 8601 time with zone.") from None
            now = timezone.now()
            # A minute of leeway for the caller's clock and the request's travel time.
            low = now + timedelta(seconds=settings.SESSION_MIN_TTL_SECONDS - 60)
            high = now + timedelta(seconds=settings.SESSION_MAX_TTL_SECONDS + 60)
            if not low <= moment <= high:
                raise input_error("expires_at_out_of_range", "expires_at must be between 30 minutes and 24 hours from now.")
            return moment

        def validate(self, attrs):
            unknown_parameters_reject(self)
            exp = currencies.exponent(attrs["currency"])
            # Compare with the amount rounded to the currency: normalize() turns 1e-999999999 into 0.
            if attrs["amount"] != attrs["amount"].quantize(Decimal(1).scaleb(-exp)):
                raise serializers.ValidationError({"amount": serializers.ErrorDetail(
                    f"{attrs['currency']} amounts have at most {exp} decimal places.", code="amount_precision")})
            return attrs

    @extend_schema(operation_id="create_session", summary="Create a payment session", tags=["sessions"],
                   description="With a secret key (`sk_…`, from your server): any session, as below. With a "
                               "publishable key (`pk_…`, from a web page of an origin in your `allowed_origins`): "
                               "only `{\"payment_link\": \"plink_…\", \"customer_email\"?, "
                               "\"client_reference_id\"?, \"amount\"? (custom-amount links only)}`; the price "
                               "comes from the link, any other field is a `400 parameter_not_allowed`, and the "
                               "answer is a `PublishableSession`. A secret key sent with an `Origin` header (from "
                               "a browser) is refused: `401 secret_key_in_browser`. `422 web3_rate_unavailable` "
                               "when the session offers web3 and no price for its asset can be had now (retry "
                               "later or create it without web3).",
                   request={"application/json": InputSerializer}, parameters=[IDEMPOTENCY_KEY, RETRY_AFTER],
                   responses={201: SessionSerializer, **errors(400, 401, 403, 404, 409, 422, 429)})
    def post(self, request):
        if not isinstance(request.data, dict):
            raise ApiError("body_invalid", "The body must be a JSON object.")
        account, api_key = request.user, request.auth
        if type(api_key) is PublishableKey:
            return publishable_create_session(request)

        def produce() -> tuple[int, dict[str, Any]]:
            fields = plain_create_input(request.data)
            if fields is None:
                serializer = self.InputSerializer(data=request.data, context={"account": account})
                serializer.is_valid(raise_exception=True)
                fields = serializer.validated_data
            session = session_create(account=account, api_key=api_key, **fields)
            return 201, session_payload(session, with_web3=True)

        # The key's mode is part of the request: a live key must never be handed a test session.
        return idempotent_response(request, scope={"mode": api_key.mode}, produce=produce)


class SessionListApi(APIView):
    @extend_schema(operation_id="list_sessions", summary="List your sessions, newest first", tags=["sessions"],
                   parameters=[*LIST_PARAMETERS, RETRY_AFTER],
                   responses={200: SessionPageSerializer, **errors(400, 401, 429)})
    def get(self, request):
        status = request.query_params.get("status")
        # `status=` (empty) is not a status either: a 400, as the schema's enum says, not an unfiltered list.
        if status is not None and status not in Status.values:
            raise ApiError("status_invalid", f"status must be one of {', '.join(Status.values)}.", field="status")
        paginator = StrictCursorPagination()
        page = paginator.paginate_queryset(selectors.session_list(account=request.user, status=status), request, self)
        return paginator.get_paginated_response([session_payload(s) for s in page])


class SessionDetailApi(APIView):
    @extend_schema(operation_id="get_session", summary="Get one of your sessions", tags=["sessions"],
                   parameters=[SESSION_ID, RETRY_AFTER], responses={200: SessionSerializer, **errors(401, 404, 429)})
    def get(self, request, session_id: str):
        session = selectors.session_get_for_account(account=request.user, session_id=session_id)
        if session is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        return Response(session_payload(session, with_web3=True))


class SessionExpireApi(APIView):
    @extend_schema(operation_id="expire_session", summary="Expire an open session now", tags=["sessions"],
                   request=None, parameters=[SESSION_ID, RETRY_AFTER],
                   responses={200: SessionSerializer, **errors(401, 404, 409, 429)})
    def post(self, request, session_id: str):
        session = selectors.session_get_for_account(account=request.user, session_id=session_id)
        if session is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        session = session_expire(session_id=session.pk, actor=f"api_key:{request.auth.pk}")
        return Response(session_payload(session))


class SessionFulfilAnywayApi(APIView):
    @extend_schema(operation_id="fulfil_session_anyway", summary="Deliver a session that was paid after it failed",
                   description="For a session with a late payment (`late_payments` is not empty): issues the "
                               "invoice, the key and the access link as for a paid session, once, and records "
                               "who decided. The session stays `failed`. Calling it again changes nothing. "
                               "`409 no_late_payment` for any other session.",
                   tags=["sessions"], request=None, parameters=[SESSION_ID, RETRY_AFTER],
                   responses={200: SessionSerializer, **errors(401, 404, 409, 429)})
    def post(self, request, session_id: str):
        session = selectors.session_get_for_account(account=request.user, session_id=session_id)
        if session is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        session, _ = session_fulfil_anyway(session_id=session.pk, actor=f"api_key:{request.auth.pk}")
        return Response(session_payload(session))


IF_NONE_MATCH = OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, required=False,
                                 description="The `ETag` of the last answer.")
STATUS_ETAG = OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=[200, 304],
                               description="Changes when the status or paid_at does.")


class SessionStatusApi(APIView):
    """Public: anyone holding the id may poll it. No customer data."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = throttling.STATUS_THROTTLES

    @extend_schema(operation_id="get_session_status", summary="Poll a session's status (public)", tags=["sessions"],
                   description="Limited per session, not per client address: a checkout page polls its own "
                               "session. Send the last `ETag` as `If-None-Match`: an unchanged status answers "
                               "`304` with no body (browsers do this by themselves).",
                   auth=[], parameters=[SESSION_ID, IF_NONE_MATCH, STATUS_ETAG, RETRY_AFTER],
                   responses={200: SessionStatusSerializer,
                              304: OpenApiResponse(description="The status has not changed since that ETag."),
                              **errors(404, 429)})
    def get(self, request, session_id: str):
        row = selectors.session_status_get(session_id=session_id)
        if row is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        paid_at = iso_utc(row["paid_at"])
        etag = '"' + hashlib.sha256(f"{row['status']}|{paid_at}|{row['refund_status']}".encode()).hexdigest()[:20] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in request.headers.get("If-None-Match", ""):
            return Response(status=304, headers=headers)
        return Response({"id": str(row["id"]), "session_id": str(row["id"]), "status": row["status"],
                         "paid_at": paid_at, "refund_status": row["refund_status"]}, headers=headers)


class SessionWeb3TxApi(APIView):
    """Public: the checkout page submits the customer's transaction. Only the chain decides."""

    authentication_classes: list = []
    permission_classes: list = []
    # Each submission costs RPC calls to the node: limited like the other checkout actions.
    throttle_classes = throttling.CHECKOUT_THROTTLES

    class InputSerializer(serializers.Serializer):
        """For the schema; the view checks the body itself to answer with its own codes."""

        tx_hash = serializers.RegexField(r"^(0x)?[0-9a-fA-F]{64}$", help_text="The transaction hash, 0x + 64 hex.")
        email = serializers.EmailField(max_length=254, required=False, allow_blank=True,
                                       help_text="Where to send the receipt, if the session has no customer email.")

    @extend_schema(operation_id="submit_web3_tx", summary="Submit a crypto payment's transaction (public)",
                   description="The checkout page calls this after the wallet sends. The chain is read to check "
                               "what the transaction pays; the body alone proves nothing. `202` while it is not "
                               "mined; `422` when it cannot pay this session (`tx_wrong_recipient`, "
                               "`tx_wrong_token`, `tx_failed`, `tx_already_used`, `tx_no_value`, "
                               "`web3_not_offered`); `503 chain_unavailable` when no node is configured or it "
                               "does not answer.",
                   tags=["sessions"], auth=[], request={"application/json": InputSerializer},
                   parameters=[SESSION_ID, RETRY_AFTER],
                   responses={200: Web3TxResultSerializer,
                              202: OpenApiResponse(Web3TxResultSerializer, description="Not mined yet."),
                              **errors(400, 404, 415, 422, 429, 503)})
    def post(self, request, session_id: str):

        session = selectors.session_get_public(session_id=session_id)
        if session is None:
            raise ApiError("session_not_found", "No such session.", status_code=404)
        tx_hash = request.data.get("tx_hash") if isinstance(request.data, dict) else None
        if not isinstance(tx_hash, str):
            raise ApiError("tx_hash_required", "Send {\"tx_hash\": \"0x…\"}.", field="tx_hash")
        email = request.data.get("email")
        if email:
            # The wallet flow has no form post: the page sends the receipt address along.
            if not isinstance(email, str) or len(email) > 254:
                raise ApiError("email_invalid", "email is not a valid address.", field="email")
            try:
                validate_email(email)
            except ValidationError:
                raise ApiError("email_invalid", "email is not a valid address.", field="email") from None
        try:
            # The email is stored only once the chain shows this transaction paying this session's
            # address: a made-up hash must not choose where the receipt and the key go.
            check = crypto.session_tx_submit(session_id=session.pk, tx_hash=tx_hash, email=email or "")
        except crypto.TxRejected as exc:
            status_code = 400 if exc.code == "tx_hash_invalid" else 422
            raise ApiError(exc.code, exc.message, field="tx_hash", status_code=status_code) from None
        except (ChainUnavailable, ChainMismatch) as exc:
            raise ApiError("chain_unavailable", str(exc), status_code=503) from None
        session.refresh_from_db()
        transfers = [{"log_index": t.log_index, "amount": str(int(t.amount)), "confirmations": t.confirmations,
                      "status": t.status, "note": t.note} for t in check.transfers]
        found = bool(check.transfers)
        return Response({"session_id": str(session.pk), "status": session.status, "tx_hash": check.tx_hash,
                         "found": found, "transfers": transfers}, status=200 if found else 202)
