from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_append, audit_event, audit_record
from core import errors
from core.modes import Mode, ensure_live_allowed
from keys_app.models import Account, ApiKey
from sessions_app import one_statement
from sessions_app.lifecycle import announce_delivery, session_state
from sessions_app.merchant_events import session_emit, session_event, transition_type
from sessions_app.models import OPEN_STATUSES, IdempotencyRecord, LatePayment, PaymentSession, Status
from sessions_app.providers import get_provider

logger = logging.getLogger(__name__)



# ---------------------------------------------------------------- creation


def session_create(
    *,
    account: Account,
    api_key: ApiKey,
    amount: Decimal,
    currency: str = "EUR",
    mode: str | None = None,
    description: str = "",
    customer_email: str = "",
    metadata: dict[str, Any] | None = None,
    entitlement: dict[str, Any] | None = None,
    client_reference_id: str = "",
    success_url: str = "",
    cancel_url: str = "",
    expires_at=None,
    providers: list[str] | None = None,
) -> PaymentSession:
    mode = mode or api_key.mode
    if mode != api_key.mode:
        raise errors.DomainError("mode_mismatch", f"A {api_key.mode} key cannot create {mode} sessions.", field="mode")
    session = session_build(
        account=account, amount=amount, currency=currency, mode=mode, description=description,
        customer_email=customer_email, metadata=metadata or {}, entitlement=entitlement or {},
        client_reference_id=client_reference_id, success_url=success_url, cancel_url=cancel_url,
        expires_at=expires_at, providers=providers,
    )
    return session_start(session, actor=f"api_key:{api_key.pk}")


def session_build(*, account: Account, expires_at=None, providers: list[str] | None = None,
                  **fields: Any) -> PaymentSession:
    """A new session in memory, with the defaults every way of starting one shares (expiry, providers)."""
    now = timezone.now()
    return PaymentSession(
        account=account, created_at=now,
        expires_at=expires_at or now + timedelta(seconds=settings.SESSION_DEFAULT_TTL_SECONDS),
        providers=providers or list(account.enabled_providers or ["stripe"]), **fields,
    )


def session_start(session: PaymentSession, *, actor: str, **audit_after: Any) -> PaymentSession:
    """Write a new session with its audit link and its `session.created` event (create_session,
    payment links). `audit_after` adds to what the audit link records of the session."""
    if session.mode == Mode.LIVE:
        ensure_live_allowed("sessions")
    prepared = [get_provider(name) for name in session.providers]
    link = audit_event(action="session.created", subject_type="payment_session", subject_id=session.pk,
                       account_id=session.account_id, actor=actor,
                       after={"status": session.status, "amount": session.amount, "currency": session.currency,
                              "mode": session.mode, **audit_after})
    if one_statement.enabled() and not any(p.prepares_sessions for p in prepared):
        one_statement.session_insert(session, link, session_event(session, "session.created"))
        return session
    with transaction.atomic():
        session.save(force_insert=True)
        for provider in prepared:
            # A provider may attach what its checkout needs (Web3: an address and a quote).
            provider.prepare_session(session=session)
        audit_append(link)
        session_emit(session, "session.created")
    return session


def request_fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def idempotent(
    *, account: Account, key: str | None, fingerprint: str, produce: Callable[[], tuple[int, dict[str, Any]]]
) -> StoredResponse:
    """Run `produce` once per (merchant, key); later calls with the same body get the first response."""
    if not key:
        status_code, body = produce()
        return StoredResponse(status_code, body, replayed=False)
    if len(key) > 255:
        raise errors.DomainError("idempotency_key_invalid", "Idempotency-Key is longer than 255 characters.")
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    IdempotencyRecord.objects.filter(account=account, key=key, created_at__lt=cutoff).delete()
    existing = IdempotencyRecord.objects.filter(account=account, key=key).first()
    if existing is None:
        try:
            with transaction.atomic():
                status_code, body = produce()
                IdempotencyRecord.objects.create(account=account, key=key, request_hash=fingerprint,
                                                 status_code=status_code, response_body=body)
            return StoredResponse(status_code, body, replayed=False)
        except IntegrityError:
            # A concurrent request with the same key won; what it created stands, ours rolled back.
            existing = IdempotencyRecord.objects.filter(account=account, key=key).first()
            if existing is None:
                raise
    if existing.request_hash != fingerprint:
        raise errors.Conflict("idempotency_key_reused",
                       "This Idempotency-Key was used with different parameters.")
    return StoredResponse(existing.status_code, existing.response_body, replayed=True)


# ---------------------------------------------------------------- state changes


@transaction.atomic
def session_expire(*, session_id: uuid.UUID, actor: str, reason: str = "expired") -> PaymentSession:
    session = PaymentSession.objects.select_for_update().get(pk=session_id)
    if session.status not in OPEN_STATUSES:
        raise errors.Conflict("session_not_open", f"The session is already {session.status}.")
    before = session_state(session)
    session.mark_failed(reason=reason)
    session.save()
    audit_record(action="session.failed", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=actor, before=before, after=session_state(session))
    session_emit(session, transition_type(session))
    return session


def session_expire_overdue(*, now=None, limit: int = 500) -> int:
    """Fail open sessions past expires_at. Each in its own transaction; a race with a payment is fine."""
    now = now or timezone.now()
    ids = list(PaymentSession.objects.filter(status__in=OPEN_STATUSES, expires_at__lte=now)
               .values_list("pk", flat=True)[:limit])
    expired = 0
    for session_id in ids:
        try:
            session_expire(session_id=session_id, actor="system:expiry")
            expired += 1
        except errors.Conflict:
            pass  # paid or failed meanwhile
    return expired




@transaction.atomic
def session_set_provider_reference(*, session_id: uuid.UUID, provider: str, reference: str) -> None:
    """Remember the provider object (Checkout Session, PaymentIntent) a payment was started with."""
    session = PaymentSession.objects.select_for_update().get(pk=session_id)
    if not session.is_open or (session.provider, session.provider_reference) == (provider, reference):
        return
    before = session_state(session)
    session.provider, session.provider_reference = provider, reference[:200]
    session.save(update_fields=["provider", "provider_reference"])
    audit_record(action="session.payment_started", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=f"checkout:{provider}", before=before,
                 after=session_state(session))



class FulfilAnywayRefused(errors.Conflict):
    pass


@transaction.atomic
def session_fulfil_anyway(*, session_id: uuid.UUID, actor: str) -> tuple[PaymentSession, bool]:
    """The merchant's decision to deliver a session that was paid after it failed.

    Returns the session and whether this call decided it: a second click (or two at once, which
    queue on the row lock) finds the decision made and delivers nothing more.
    """
    session = PaymentSession.objects.select_for_update().get(pk=session_id)
    if session.fulfil_anyway_at is not None:
        return session, False
    late = LatePayment.objects.filter(session=session).order_by("received_at", "id").first()
    if session.status != Status.FAILED or late is None:
        raise FulfilAnywayRefused("no_late_payment", "Only a failed session that was paid late can be fulfilled "
                                  "anyway.")
    before = {"fulfil_anyway_at": None, "provider": session.provider, "provider_reference": session.provider_reference}
    session.fulfil_anyway_at = timezone.now()
    session.fulfil_anyway_by = actor[:200]
    # The invoice names the payment that actually arrived.
    session.provider, session.provider_reference = late.provider, late.provider_reference
    session.paid_at = late.received_at
    PaymentSession.objects.filter(pk=session.pk).update(
        fulfil_anyway_at=session.fulfil_anyway_at, fulfil_anyway_by=session.fulfil_anyway_by,
        provider=session.provider, provider_reference=session.provider_reference, paid_at=session.paid_at)
    audit_record(action="session.fulfil_anyway", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=actor, before=before,
                 after={"fulfil_anyway_at": session.fulfil_anyway_at, "provider": session.provider,
                        "provider_reference": session.provider_reference},
                 data={"late_payment_id": late.pk, "status": session.status})
    # Delivered as a paid session is, announced the same way.
    announce_delivery(session)
    return session, True

