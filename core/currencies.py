"""ISO 4217 currencies we accept, with their minor-unit exponent."""

from __future__ import annotations

from decimal import Decimal

EXPONENTS: dict[str, int] = {
    # Zero-decimal currencies.
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # Three-decimal currencies.
    "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3,
}
TWO_DECIMAL = (
    "AED AUD BGN BRL CAD CHF CNY CZK DKK EGP EUR GBP HKD HUF IDR ILS INR MAD MXN MYR NOK NZD PHP PLN "
    "RON RSD SAR SEK SGD THB TRY TWD UAH USD ZAR"
).split()
EXPONENTS.update({code: 2 for code in TWO_DECIMAL})


def is_supported(code: str) -> bool:
    return code in EXPONENTS


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
