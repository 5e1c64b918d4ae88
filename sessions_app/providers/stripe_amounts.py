"""Stripe's minor units, which are not always ISO 4217's (https://docs.stripe.com/currencies).

- Zero-decimal currencies: the amount is sent as is (500 JPY -> 500).
- Three-decimal currencies: three decimals, the last one 0 (5.120 KWD -> 5120; 5.125 cannot be charged).
- Special cases, sent with two decimals although the currency has none in practice: ISK and UGX
  (5 ISK -> 500), in whole units only (the amount must be divisible by 100). HUF and TWD are
  charged with two decimals too (their special rule is for payouts, which this service makes none of).
- Every other currency: two decimals.

The service's own amounts follow ISO 4217 (core.currencies); this module is the one place that
turns them into Stripe's integers and back.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from core import errors
from sessions_app.providers.base import PaymentStartError

ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
# Two decimals in Stripe's API, whole units only.
WHOLE_UNITS_AS_TWO_DECIMALS = frozenset(("ISK", "UGX"))


class AmountNotChargeable(PaymentStartError, errors.Unprocessable):
    """An amount Stripe cannot charge in its currency (fractional ISK, a KWD amount not ending in 0)."""


def exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_stripe(amount: Decimal, currency: str) -> int:
    """The integer Stripe's API expects for `amount` of `currency`."""
    code = currency.upper()
    scaled = amount * (Decimal(10) ** exponent(code))
    try:
        minor = int(scaled.to_integral_exact())
    except InvalidOperation:
        minor = None
    if minor is None or Decimal(minor) != scaled:
        raise AmountNotChargeable("amount_not_chargeable",
                                  f"{amount} {code} has more decimals than Stripe charges in {code}.")
    if code in WHOLE_UNITS_AS_TWO_DECIMALS and minor % 100:
        raise AmountNotChargeable("amount_not_chargeable", f"Stripe charges {code} in whole units only.")
    if code in THREE_DECIMAL and minor % 10:
        raise AmountNotChargeable("amount_not_chargeable",
                                  f"Stripe charges {code} amounts whose third decimal is 0 (e.g. 5.120, not 5.125).")
    return minor


def from_stripe(minor: int, currency: str) -> Decimal:
    """The amount a Stripe integer stands for (150000 ISK -> 1500)."""
    return Decimal(minor).scaleb(-exponent(currency))
