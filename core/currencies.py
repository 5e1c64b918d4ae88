"""The currencies we accept, with their ISO 4217 minor-unit exponent.

The exponents come from CLDR through babel (`get_currency_precision`), a kept library, not from
a table of our own. Which currencies we accept is our choice (ACCEPTED); how many decimals each
has is not. A payment provider that represents amounts differently (Stripe's ISK, for one)
converts in its own module: these are the service's amounts.
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import get_currency_precision, list_currencies

ACCEPTED = frozenset((
    "AED AUD BGN BHD BIF BRL CAD CHF CLP CNY CZK DJF DKK EGP EUR GBP GNF HKD HUF IDR ILS INR ISK JOD JPY KMF "
    "KRW KWD MAD MXN MYR NOK NZD OMR PHP PLN PYG RON RSD RWF SAR SEK SGD THB TND TRY TWD UAH UGX USD VND VUV "
    "XAF XOF XPF ZAR"
).split())
# Every accepted code must be one babel knows: for an unknown code it answers its default of 2.
if not ACCEPTED <= frozenset(list_currencies()):
    raise RuntimeError(f"babel does not know {sorted(ACCEPTED - frozenset(list_currencies()))}")

# code -> exponent, for the schema's enum and anything else that lists the currencies.
EXPONENTS: dict[str, int] = {code: get_currency_precision(code) for code in sorted(ACCEPTED)}


def is_supported(code: str) -> bool:
    return code in ACCEPTED


def exponent(code: str) -> int:
    return EXPONENTS[code]


def to_minor(amount: Decimal, code: str) -> int:
    return int((amount * (Decimal(10) ** exponent(code))).to_integral_exact())


def from_minor(minor: int, code: str) -> Decimal:
    return (Decimal(minor) / (Decimal(10) ** exponent(code))).quantize(Decimal(1).scaleb(-exponent(code)))


def in_minor_units(amount: Decimal, code: str) -> Decimal:
    """An amount (stored with three decimals) at its currency's precision, for display and exports."""
    exp = EXPONENTS.get(code, 2)
    return amount.quantize(Decimal(1).scaleb(-exp))
