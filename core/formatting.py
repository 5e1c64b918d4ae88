"""How money and time are written out: on invoices, in emails, in the dashboard, in the API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from core import currencies


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 with a Z, as the API writes every time; None stays None."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def amount_text(amount: Decimal | None, currency: str) -> str:
    """An amount at its currency's precision, without the code (exports); None is empty."""
    return "" if amount is None else str(currencies.in_minor_units(amount, currency))


def money(amount: Decimal, currency: str, *, grouped: bool = True) -> str:
    """An amount with its currency code: "1,234.50 EUR" on documents, "1234.50 EUR" in lists."""
    value = currencies.in_minor_units(amount, currency)
    return f"{value:,} {currency}" if grouped else f"{value} {currency}"
