"""What create_session accepts, checked field by field: the serializer's fields, and the plain
check that answers the common body without building the serializer (a property test holds both
to one result: sessions_app/tests/test_plain_input.py)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import currencies
from keys_app.models import PROVIDERS

PROVIDER_CHOICES = list(PROVIDERS)
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LEN = 40
METADATA_MAX_VALUE_LEN = 500


def input_error(code: str, message: str) -> serializers.ValidationError:
    return serializers.ValidationError(serializers.ErrorDetail(message, code=code))


def unknown_parameters_reject(serializer: serializers.Serializer) -> None:
    """A misspelt optional field would otherwise be dropped in silence: the first one (sorted, so the
    answer does not vary) is a 400."""
    unknown = sorted(set(serializer.initial_data) - set(serializer.fields))
    if unknown:
        raise serializers.ValidationError(
            {unknown[0]: serializers.ErrorDetail(f"Unknown parameter {unknown[0]!r}.", code="parameter_unknown")})


def amount_clean(data: Any) -> Decimal:
    """A positive decimal amount, as a JSON number or a string; never a float."""
    if isinstance(data, bool) or not isinstance(data, (int, str, Decimal)):
        raise input_error("amount_invalid", "amount must be a number or a decimal string.")
    try:
        value = Decimal(str(data).strip())
    except InvalidOperation:
        raise input_error("amount_invalid", "amount is not a number.") from None
    if not value.is_finite():
        raise input_error("amount_invalid", "amount must be finite.")
    if value <= 0:
        raise input_error("amount_not_positive", "amount must be greater than zero.")
    if value > settings.SESSION_MAX_AMOUNT:
        raise input_error("amount_too_large", f"amount may be at most {settings.SESSION_MAX_AMOUNT}.")
    return value


class AmountField(serializers.Field):
    """A positive decimal amount, as a JSON number or a string; never a float."""

    def to_internal_value(self, data: Any) -> Decimal:
        return amount_clean(data)

    def to_representation(self, value: Decimal) -> str:
        return str(value)


class HttpUrlField(serializers.URLField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value and not value.lower().startswith(("http://", "https://")):
            raise input_error("invalid", "Only http(s) URLs are allowed.")
        return value


def metadata_clean(value: Any, *, name: str = "metadata") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise input_error(f"{name}_invalid", f"{name} must be a JSON object.")
    if len(value) > METADATA_MAX_KEYS:
        raise input_error(f"{name}_too_large", f"{name} may have at most {METADATA_MAX_KEYS} keys.")
    for key, item in value.items():
        # PostgreSQL's jsonb cannot store NUL characters.
        if "\x00" in key or "\x00" in str(item):
            raise input_error(f"{name}_invalid", f"{name} may not contain NUL characters.")
        if len(key) > METADATA_MAX_KEY_LEN:
            raise input_error(f"{name}_invalid", f"{name} keys may be at most {METADATA_MAX_KEY_LEN} characters.")
        if isinstance(item, (dict, list)) or item is None:
            raise input_error(f"{name}_invalid", f"{name} values must be strings, numbers or booleans.")
        if len(str(item)) > METADATA_MAX_VALUE_LEN:
            raise input_error(f"{name}_too_large",
                         f"{name} values may be at most {METADATA_MAX_VALUE_LEN} characters.")
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in value.items()}


ENTITLEMENT_MAX_DAYS = 3650


def entitlement_clean(value: Any) -> dict[str, Any]:
    """What the buyer's key carries: {"expires_in_days": 1..3650 or null, "metadata": {...}}."""
    if not isinstance(value, dict):
        raise input_error("entitlement_invalid", "entitlement must be a JSON object.")
    unknown = sorted(set(value) - {"expires_in_days", "metadata"})
    if unknown:
        raise input_error("entitlement_invalid",
                     f"Unknown entitlement parameter {unknown[0]!r}: only expires_in_days and metadata.")
    days = value.get("expires_in_days")
    if days is not None:
        # JSON numbers may arrive as Decimal (parsers.py); 30.0 is 30, 30.5 is not a number of days.
        if (isinstance(days, bool) or not isinstance(days, (int, Decimal))
                or (isinstance(days, Decimal) and (not days.is_finite() or days != days.to_integral_value()))):
            raise input_error("entitlement_expires_in_days_invalid",
                         "entitlement.expires_in_days must be a whole number of days, or null.")
        # Compared before int(): 1E+999999999 must not become a billion-digit integer.
        if not 1 <= days <= ENTITLEMENT_MAX_DAYS:
            raise input_error("entitlement_expires_in_days_invalid",
                         f"entitlement.expires_in_days must be between 1 and {ENTITLEMENT_MAX_DAYS}.")
        days = int(days)
    metadata = metadata_clean(value["metadata"], name="entitlement_metadata") if "metadata" in value else {}
    return {"expires_in_days": days, "metadata": metadata}


@extend_schema_field({
    "type": "object", "additionalProperties": False,
    "properties": {
        "expires_in_days": {"type": "integer", "nullable": True, "minimum": 1, "maximum": ENTITLEMENT_MAX_DAYS,
                            "description": "The key expires this many days after it is issued; null: never."},
        "metadata": {"type": "object", "maxProperties": METADATA_MAX_KEYS,
                     "additionalProperties": {"oneOf": [{"type": "string", "maxLength": METADATA_MAX_VALUE_LEN},
                                                        {"type": "number"}, {"type": "boolean"}]},
                     "description": "Returned by POST /keys/verify, e.g. the plan the buyer paid for."},
    },
    "description": "What the entitlement key issued to the buyer on payment carries.",
})
class EntitlementField(serializers.JSONField):
    pass


# The keys and defaults of the plain request most merchants send; see plain_create_input.
PLAIN_DEFAULTS: dict[str, Any] = {"currency": "EUR", "description": "", "customer_email": "", "metadata": None,
                                  "client_reference_id": "", "success_url": "", "cancel_url": ""}
_TEXT_LIMITS = {"currency": 3, "description": 500, "customer_email": 254, "client_reference_id": 200,
                "success_url": 2000, "cancel_url": 2000}
_url_validator = URLValidator()
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def plain_create_input(data: dict[str, Any]) -> dict[str, Any] | None:
    """The validated fields of a plainly valid body, or None to let the serializer decide.

    Building the DRF serializer (a deep copy of eleven fields) costs more than the rest of the
    validation; the common body (an amount, text already trimmed, a known currency, flat
    metadata) is checked here with the same rules, and anything else, valid or not, goes to
    the serializer, which alone words the errors. A property test holds the two to the same
    result wherever this one answers.
    """
    if "amount" not in data or not data.keys() <= PLAIN_DEFAULTS.keys() | {"amount", "entitlement"}:
        return None
    out: dict[str, Any] = {}
    for key, default in PLAIN_DEFAULTS.items():
        value = data.get(key, default)
        if key == "metadata":
            continue
        if (not isinstance(value, str) or value != value.strip() or len(value) > _TEXT_LIMITS[key]
                or _UNSTORABLE.search(value)):
            return None
        out[key] = value
    try:
        out["amount"] = amount_clean(data["amount"])
        out["metadata"] = metadata_clean(data["metadata"]) if "metadata" in data else {}
        if "entitlement" in data:
            out["entitlement"] = entitlement_clean(data["entitlement"])
        if out["customer_email"]:
            validate_email(out["customer_email"])
        for key in ("success_url", "cancel_url"):
            if out[key]:
                _url_validator(out[key])
                if not out[key].lower().startswith(("http://", "https://")):
                    return None
    except (serializers.ValidationError, ValidationError):
        return None
    currency = out["currency"]
    if len(currency) != 3 or not currencies.is_supported(currency.upper()):
        return None
    out["currency"] = currency.upper()
    if out["amount"] != out["amount"].quantize(Decimal(1).scaleb(-currencies.exponent(out["currency"]))):
        return None
    return out


class CheckoutCustomerInput(serializers.Serializer):
    """The checkout form's receipt address and name, held to the JSON API's rules (customer_email is
    an EmailField of at most 254 characters; text never holds NUL): a form post is no looser."""

    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
