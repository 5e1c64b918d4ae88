"""The buyer's key: issued once per session and sealed, then shown once in plain text (on the
access page, or in the receipt when the merchant opts in), or replaced by the buyer."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from core import errors
from invoices_app import secrets_box
from invoices_app.models import AccessLink, AccessLinkUse, KeyReveal
from invoices_app.services.access import access_link_use_record
from invoices_app.services.steps import ACTOR, step_once
from keys_app.entitlements import entitlement_key_issue, entitlement_key_rotate, entitlement_keys_mark_refunded
from keys_app.models import EntitlementKey
from keys_app.selectors import entitlement_key_current_for_session
from sessions_app.models import PaymentSession
from sessions_app.refunds.state import refunded_with_key_revoked

logger = logging.getLogger(__name__)


def buyer_key_issue(*, session: PaymentSession) -> EntitlementKey | None:
    """The buyer's entitlement key of the selling merchant, one per session; its plain text is
    sealed until it is revealed once (access page, or the receipt when the merchant opts in)."""

    def find() -> EntitlementKey | None:
        return EntitlementKey.objects.filter(session_id=session.pk).first()

    if not session.customer_email:
        return find()  # nobody to give one to; the merchant sees the session without a key
    return step_once(session_id=session.pk, mark="key_issued_at", find=find, make=lambda: _buyer_key_make(session))


def _buyer_key_make(session: PaymentSession) -> EntitlementKey:
    entitlement = session.entitlement or {}
    issued = entitlement_key_issue(account=session.account, session_id=session.pk,
                                   customer_email=session.customer_email,
                                   expires_in_days=entitlement.get("expires_in_days"),
                                   metadata=entitlement.get("metadata") or {}, actor=ACTOR)
    KeyReveal.objects.create(entitlement_key=issued.key, session=session,
                             ciphertext=secrets_box.seal(issued.plaintext))
    audit_record(action="fulfilment.key_issued", subject_type="payment_session", subject_id=session.pk,
                 account_id=session.account_id, actor=ACTOR,
                 data={"key_id": str(issued.key.pk), "key": issued.key.display, "mode": issued.key.mode})
    if refunded_with_key_revoked(session.pk):
        # Refunded in full before fulfilment reached the key: it is born refunded.
        entitlement_keys_mark_refunded(session_id=session.pk, actor=ACTOR)
    return issued.key


def key_reveal(*, link: AccessLink, ip: str | None = None, user_agent: str = "") -> str | None:
    """The buyer's key in plain text, once. None when it was revealed before (or cannot be)."""
    with transaction.atomic():
        # The link row first: a revocation locks it before the audit chain, and so do we.
        AccessLink.objects.select_for_update(no_key=True).only("pk").get(pk=link.pk)
        reveal = KeyReveal.objects.select_for_update().filter(session_id=link.session_id).first()
        if reveal is None or reveal.revealed_at or not reveal.ciphertext:
            access_link_use_record(link=link, action=AccessLinkUse.Action.REVEAL_REFUSED, ip=ip,
                                   user_agent=user_agent)
            return None
        try:
            plaintext = secrets_box.open_sealed(reveal.ciphertext)
        except secrets_box.CannotOpen:
            logger.error("key of session %s cannot be unsealed (DJANGO_SECRET_KEY changed?)", link.session_id)
            return None
        reveal.ciphertext = ""
        reveal.revealed_at = timezone.now()
        reveal.save(update_fields=["ciphertext", "revealed_at"])
        access_link_use_record(link=link, action=AccessLinkUse.Action.REVEAL, ip=ip, user_agent=user_agent)
        audit_record(action="key.revealed", subject_type="entitlement_key", subject_id=reveal.entitlement_key_id,
                     account_id=link.invoice.account_id, actor=f"access_link:{link.jti}",
                     data={"session_id": str(link.session_id), "ip": ip})
    return plaintext


def key_rotate_by_customer(*, link: AccessLink, ip: str | None = None, user_agent: str = "") -> str:
    """The buyer replaces their key from the access page: the new key is returned (to be shown
    once) and the old one stops at once. Raises a domain error when the key cannot be replaced."""
    with transaction.atomic():
        # Same lock order as key_reveal: the link row, then the reveal.
        AccessLink.objects.select_for_update(no_key=True).only("pk").get(pk=link.pk)
        reveal = KeyReveal.objects.select_for_update().filter(session_id=link.session_id).first()
        key = entitlement_key_current_for_session(session_id=link.session_id)
        if key is None:
            raise errors.NotFound("key_not_found", "There is no key to replace yet.")
        issued = entitlement_key_rotate(key=key, overlap=timedelta(0), actor=f"access_link:{link.jti}")
        if reveal is not None:
            # Shown in this response only: nothing is left to reveal later.
            reveal.entitlement_key = issued.key
            reveal.ciphertext = ""
            reveal.revealed_at = timezone.now()
            reveal.save(update_fields=["entitlement_key", "ciphertext", "revealed_at"])
        access_link_use_record(link=link, action=AccessLinkUse.Action.ROTATE, ip=ip, user_agent=user_agent)
    return issued.plaintext


def key_plaintext_for_receipt(session: PaymentSession) -> str | None:
    """The plain key for the receipt, when the merchant opted in and nobody has seen it yet."""
    if not session.account.email_key_to_customer:
        return None
    reveal = KeyReveal.objects.filter(session=session, revealed_at__isnull=True).exclude(ciphertext="").first()
    if reveal is None:
        return None
    try:
        return secrets_box.open_sealed(reveal.ciphertext)
    except secrets_box.CannotOpen:
        logger.error("key of session %s cannot be unsealed for the receipt", session.pk)
        return None


def key_mark_emailed(session: PaymentSession) -> None:
    """The receipt carried the key: it counts as revealed, and the access page says where it went."""
    now = timezone.now()
    with transaction.atomic():
        reveal = KeyReveal.objects.select_for_update().filter(session=session, emailed_at__isnull=True).first()
        if reveal is None:
            return
        reveal.ciphertext, reveal.emailed_at = "", now
        reveal.revealed_at = reveal.revealed_at or now
        reveal.save(update_fields=["ciphertext", "emailed_at", "revealed_at"])
        audit_record(action="key.emailed", subject_type="entitlement_key", subject_id=reveal.entitlement_key_id,
                     account_id=session.account_id, actor=ACTOR, data={"session_id": str(session.pk)})
