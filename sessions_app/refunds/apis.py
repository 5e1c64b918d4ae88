"""The refund endpoints: thin views over refunds.services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http import ApiError
from core.openapi import IDEMPOTENCY_KEY, RETRY_AFTER, errors
from sessions_app import selectors
from sessions_app.apis import idempotent_response
from sessions_app.crypto.chain import ChainMismatch, ChainUnavailable
from sessions_app.inputs import AmountField, unknown_parameters_reject
from sessions_app.openapi import SESSION_ID
from sessions_app.refunds import selectors as refund_selectors
from sessions_app.refunds.models import Refund, RefundReason, RefundStatus
from sessions_app.refunds.services import refund_cancel_pending, refund_create
from sessions_app.refunds.state import refund_data
from sessions_app.refunds.web3 import refund_payout_submit

REFUND_ID = OpenApiParameter("refund_id", str, OpenApiParameter.PATH, description="The refund's id (a UUID).")


class RefundSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = serializers.CharField(default="refund")
    session_id = serializers.UUIDField()
    amount = serializers.CharField(help_text="Decimal string in major units.")
    currency = serializers.CharField()
    reason = serializers.ChoiceField(choices=RefundReason.choices)
    status = serializers.ChoiceField(choices=RefundStatus.choices,
                                     help_text="pending → succeeded | failed | canceled.")
    mode = serializers.ChoiceField(choices=["test", "live"])
    provider = serializers.CharField(allow_blank=True)
    provider_reference = serializers.CharField(allow_blank=True, help_text="The provider's refund id (re_…).")
    failure_reason = serializers.CharField(allow_blank=True)
    origin = serializers.ChoiceField(choices=Refund.Origin.choices,
                                     help_text="`provider`: made at the provider and seen by its webhook.")
    actor = serializers.CharField(allow_blank=True, help_text="Who asked: an API key, a dashboard user, a webhook.")
    revoke_key = serializers.BooleanField(allow_null=True)
    created_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    canceled_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Refund"


class RefundListSerializer(serializers.Serializer):
    results = RefundSerializer(many=True)

    class Meta:
        ref_name = "RefundList"


def _session_or_404(request, session_id: str):
    session = selectors.session_get_for_account(account=request.user, session_id=session_id)
    if session is None:
        raise ApiError("session_not_found", "No such session.", status_code=404)
    return session


def _same_mode(request, mode: str) -> None:
    # Money moves: a test key never refunds a live payment, nor a live key a test one.
    if request.auth.mode != mode:
        raise ApiError("mode_mismatch", f"A {request.auth.mode} key cannot refund {mode} payments.", status_code=403)


class SessionRefundsApi(APIView):
    class InputSerializer(serializers.Serializer):
        amount = AmountField(required=False, help_text="Decimal string; missing means what is left of the "
                                                       "paid amount.")
        reason = serializers.ChoiceField(choices=RefundReason.choices)
        revoke_key = serializers.BooleanField(required=False, allow_null=True, default=None,
                                              help_text="Revoke the buyer's key on a full refund; the account's "
                                                        "`refund_revokes_key` (on by default) otherwise.")

        def validate(self, attrs):
            unknown_parameters_reject(self)
            return attrs

    @extend_schema(operation_id="create_refund", summary="Refund a paid session, in full or in part",
                   description="The refunds of a session never add up to more than was paid, also under "
                               "concurrent requests: `409 refund_exceeds_available`; `409 "
                               "refund_already_processed` once it is refunded in full; `409 "
                               "session_not_refundable` for a session that was not paid. Card refunds are "
                               "decided by Stripe, One.com refunds by its signed callback, crypto refunds by "
                               "the payout seen on chain; test sessions paid through the simulator refund at once.",
                   tags=["refunds"], request={"application/json": InputSerializer},
                   parameters=[SESSION_ID, IDEMPOTENCY_KEY, RETRY_AFTER],
                   responses={201: RefundSerializer, **errors(400, 401, 403, 404, 409, 429)})
    def post(self, request, session_id: str):
        if not isinstance(request.data, dict):
            raise ApiError("body_invalid", "The body must be a JSON object.")
        session = _session_or_404(request, session_id)
        _same_mode(request, session.mode)
        account, api_key = request.user, request.auth

        def produce() -> tuple[int, dict[str, Any]]:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            refund = refund_create(account=account, session_id=session.pk, amount=data.get("amount"),
                                   reason=data["reason"], revoke_key=data.get("revoke_key"),
                                   actor=f"api_key:{api_key.pk}")
            refund.refresh_from_db()
            return 201, refund_data(refund)

        return idempotent_response(request, scope={"refund_of": str(session.pk)}, produce=produce)

    @extend_schema(operation_id="list_session_refunds", summary="The refunds of one of your sessions",
                   tags=["refunds"], parameters=[SESSION_ID, RETRY_AFTER],
                   responses={200: RefundListSerializer, **errors(401, 404, 429)})
    def get(self, request, session_id: str):
        session = _session_or_404(request, session_id)
        refunds = refund_selectors.refund_list(account=request.user, session_id=session.pk)[:100]
        return Response({"results": [refund_data(r) for r in refunds]})


def _refund_or_404(request, refund_id: str) -> Refund:
    refund = refund_selectors.refund_get_for_account(account=request.user, refund_id=refund_id)
    if refund is None:
        raise ApiError("refund_not_found", "No such refund.", status_code=404)
    return refund


class RefundDetailApi(APIView):
    @extend_schema(operation_id="get_refund", summary="Get one of your refunds", tags=["refunds"],
                   parameters=[REFUND_ID, RETRY_AFTER], responses={200: RefundSerializer, **errors(401, 404, 429)})
    def get(self, request, refund_id: str):
        return Response(refund_data(_refund_or_404(request, refund_id)))


class RefundCancelApi(APIView):
    @extend_schema(operation_id="cancel_refund", summary="Cancel a pending One.com or crypto refund",
                   description="The amount is free to refund again. `409 refund_not_pending` once decided; "
                               "`409 refund_in_flight` for a card refund, which Stripe decides.",
                   tags=["refunds"], request=None, parameters=[REFUND_ID, RETRY_AFTER],
                   responses={200: RefundSerializer, **errors(401, 403, 404, 409, 429)})
    def post(self, request, refund_id: str):
        refund = _refund_or_404(request, refund_id)
        _same_mode(request, refund.mode)
        refund = refund_cancel_pending(account=request.user, refund_id=refund.pk, actor=f"api_key:{request.auth.pk}")
        return Response(refund_data(refund))




class RefundPayoutApi(APIView):
    class InputSerializer(serializers.Serializer):
        tx_hash = serializers.RegexField(r"^(0x)?[0-9a-fA-F]{64}$", help_text="Your payout transaction, 0x + 64 hex.")

    @extend_schema(operation_id="submit_refund_payout", summary="Submit the payout of a crypto refund",
                   description="After the customer gave a receiving address through the claim link, pay out from "
                               "your own wallet and submit the transaction. The refund succeeds once a transfer "
                               "of the session's asset, of at least the refund's share of what was paid, to "
                               "that address is confirmed; `202` while it is not. `422 payout_wrong_recipient`, "
                               "`payout_wrong_token`, `payout_too_small`, `payout_failed`: it does not count.",
                   tags=["refunds"], request={"application/json": InputSerializer},
                   parameters=[REFUND_ID, RETRY_AFTER],
                   responses={200: RefundSerializer, 202: RefundSerializer,
                              **errors(400, 401, 403, 404, 409, 422, 429, 503)})
    def post(self, request, refund_id: str):
        refund = _refund_or_404(request, refund_id)
        _same_mode(request, refund.mode)
        tx_hash = request.data.get("tx_hash") if isinstance(request.data, dict) else None
        if not isinstance(tx_hash, str):
            raise ApiError("tx_hash_required", "Send {\"tx_hash\": \"0x…\"}.", field="tx_hash")
        try:
            check = refund_payout_submit(account=request.user, refund_id=refund.pk, tx_hash=tx_hash,
                                         actor=f"api_key:{request.auth.pk}")
        except (ChainUnavailable, ChainMismatch) as exc:
            raise ApiError("chain_unavailable", str(exc), status_code=503) from None
        check.refund.refresh_from_db()
        body = {**refund_data(check.refund), "payout": {"tx_hash": tx_hash, "confirmations": check.confirmations,
                                                        "amount": str(check.amount), "minimum": str(check.minimum)}}
        return Response(body, status=200 if check.refund.status == RefundStatus.SUCCEEDED else 202)
