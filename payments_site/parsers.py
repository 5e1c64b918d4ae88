import json
from decimal import Decimal

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def unstorable_text(value) -> bool:
    """True if a parsed JSON value holds text PostgreSQL cannot store: NUL, or a lone surrogate
    (JSON allows both as \\u escapes; a text or jsonb column refuses them with a 500)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class DecimalJSONParser(JSONParser):
    """JSON numbers become Decimal, never float: 99.99 stays 99.99."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(stream.read().decode(encoding), parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
        if unstorable_text(data):
            raise ParseError("The body holds a NUL character or an unpaired surrogate.")
        return data


class AnyContentTypeJSONParser(DecimalJSONParser):
    """The seed's browser snippet posts JSON without a Content-Type (fetch sends text/plain)."""

    media_type = "*/*"
