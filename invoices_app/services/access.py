"""The buyer's access link: one per session, a signed token re-made from its row, revocable by staff,
renewed and sent again when the buyer asks for their links."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from audit.services import audit_record
from core.formatting import money
from core.logs import redact
from invoices_app import tokens
from invoices_app.models import AccessLink, AccessLinkUse, Invoice
from invoices_app.services.steps import ACTOR, step_once
from keys_app.selectors import test_mail_allowed
from sessions_app.models import PaymentSession, Status

logger = logging.getLogger(__name__)
# An access link in a text: its token must not reach a log.

ACCESS_LINKS_MAX = 20


def mail_allowed(session: PaymentSession, to: str) -> bool:
    """Whether `to` may be mailed about this session (in test mode, only inboxes its merchant lists)."""
    return test_mail_allowed(account=session.account, mode=session.mode, address=to)


def access_link_create(*, session: PaymentSession, invoice: Invoice) -> AccessLink:
    return step_once(session_id=session.pk, mark="link_created_at",
                     find=lambda: AccessLink.objects.filter(session=session).first(),
                     make=lambda: _access_link_make(session, invoice))


def _access_link_make(session: PaymentSession, invoice: Invoice) -> AccessLink:
    # Whole seconds: the token carries them, and the row must re-sign the same token.
    now = timezone.now().replace(microsecond=0)
    link = AccessLink.objects.create(session=session, invoice=invoice, created_at=now,
                                     expires_at=now + timedelta(seconds=settings.ACCESS_LINK_TTL_SECONDS))
    audit_record(action="access_link.created", subject_type="access_link", subject_id=link.jti,
                 account_id=session.account_id, actor=ACTOR,
                 after={"session_id": str(session.pk), "expires_at": link.expires_at})
    return link


def access_token(link: AccessLink) -> str:
    return tokens.token_encode(jti=link.jti, session_id=link.session_id, issued_at=int(link.created_at.timestamp()),
                               expires_at=int(link.expires_at.timestamp()))


def access_url(link: AccessLink) -> str:
    return f"{settings.PUBLIC_BASE_URL}/access/{access_token(link)}"


@transaction.atomic
def access_link_revoke(*, link: AccessLink, actor: str, reason: str = "") -> AccessLink:
    """Staff: stop a link from working (410 from then on). Revoking twice changes nothing."""
    link = AccessLink.objects.select_for_update().get(pk=link.pk)
    if link.revoked_at:
        return link
    link.revoked_at = timezone.now()
    link.revoked_by = actor[:200]
    link.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(action="access_link.revoked", subject_type="access_link", subject_id=link.jti,
                 account_id=link.invoice.account_id, actor=actor, after={"revoked_at": link.revoked_at},
                 data={"reason": reason})
    return link


def access_link_use_record(*, link: AccessLink, action: str, ip: str | None = None, user_agent: str = "") -> None:
    AccessLinkUse.objects.create(link=link, action=action, ip=ip or None, user_agent=user_agent[:300])


def access_links_send(*, email: str) -> int:
    """Send fresh access links for the paid sessions of `email` to that address, and only there.

    Each link's row gets a new validity (the token is re-signed from it); a link staff revoked
    stays revoked. Nothing is sent for an address without purchases: the caller answers the
    same words either way. Returns the number of links sent.
    """
    links = list(AccessLink.objects.select_related("session", "session__account", "invoice")
                 .filter(Q(session__status=Status.PAID) | Q(session__fulfil_anyway_at__isnull=False),
                         session__customer_email__iexact=email, revoked_at__isnull=True)
                 .order_by("-created_at")[:ACCESS_LINKS_MAX])
    if not links:
        return 0
    now = timezone.now().replace(microsecond=0)
    expires_at = now + timedelta(seconds=settings.ACCESS_LINK_TTL_SECONDS)
    with transaction.atomic():
        for link in links:
            AccessLink.objects.filter(pk=link.pk).update(created_at=now, expires_at=expires_at)
            link.created_at, link.expires_at = now, expires_at
            audit_record(action="access_link.renewed", subject_type="access_link", subject_id=link.jti,
                         account_id=link.invoice.account_id, actor="customer:access_links",
                         after={"expires_at": expires_at})
    # Test mode never mails an inbox its merchant did not list: those links go to the log.
    to = links[0].session.customer_email
    sendable = [link for link in links if mail_allowed(link.session, to)]
    held = [link for link in links if link not in sendable]
    for group, send in ((sendable, True), (held, False)):
        if not group:
            continue
        items = [{"seller_name": link.invoice.seller_name, "number": link.invoice.number,
                  "amount": money(link.invoice.gross, link.invoice.currency), "url": access_url(link)} for link in group]
        context = {"items": items, "expires_at": expires_at}
        message = EmailMultiAlternatives(
            subject="Your access links", body=render_to_string("emails/access_links.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[to],
        )
        message.attach_alternative(render_to_string("emails/access_links.html", context), "text/html")
        if send:
            message.send()
        else:
            logger.warning("test mode: access links for %s not sent (not the merchant's address nor in its "
                           "test_email_recipients); printed here instead.\nSubject: %s\n\n%s",
                           to, message.subject, redact(message.body),
                           extra={"mode": "test"})
    return len(sendable)
