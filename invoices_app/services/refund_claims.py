"""The claim-link email of a crypto refund: the customer names where the money should go."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from core.formatting import money
from invoices_app.models import EmailRecord
from invoices_app.services.delivery import _email_once, _mail_domain, _one_line
from sessions_app.models import Refund
from sessions_app.refunds.web3 import claim_url


def refund_claim_email(*, refund_id: str) -> EmailRecord | None:
    refund = Refund.objects.select_related("session", "account").filter(pk=refund_id).first()
    if refund is None or not refund.session.customer_email or refund.status != "pending":
        return None
    session = refund.session

    def build() -> EmailMultiAlternatives:
        context = {"refund": refund, "amount": money(refund.amount, refund.currency), "merchant": refund.account.name,
                   "claim_url": claim_url(refund), "test": refund.mode == "test"}
        return EmailMultiAlternatives(
            subject=_one_line(("[TEST] " if refund.mode == "test" else "")
                              + f"{refund.account.name} refunds {context['amount']}: where should it go?"),
            body=render_to_string("emails/refund_claim.txt", context), from_email=settings.DEFAULT_FROM_EMAIL,
            to=[session.customer_email], headers={"Message-ID": f"<refund_claim.{refund.pk}@{_mail_domain()}>"})

    return _email_once(session=session, kind=EmailRecord.Kind.REFUND_CLAIM, to=session.customer_email, step=None,
                       build=build, reference=str(refund.pk))
