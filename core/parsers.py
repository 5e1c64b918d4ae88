from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core import safe_json
from core.http import ApiError


def unstorable_text_at(value) -> tuple[str, str | None] | None:
    """Where a parsed JSON value holds text PostgreSQL cannot store: NUL, or a lone surrogate
    (JSON allows both as \\u escapes; a text or jsonb column refuses them with a 500).

    Returns (problem, top-level field) or None; problem is "nul" or "surrogate".
    """
    stack = [(value, None)]
    while stack:
        item, top = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "nul", top
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "surrogate", top
        elif isinstance(item, dict):
            for key, sub in item.items():
                owner = top if top is not None else (key if isinstance(key, str) else None)
                stack.append((key, owner))
                stack.append((sub, owner))
        elif isinstance(item, list):
            stack.extend((sub, top) for sub in item)
    return None


def unstorable_text(value) -> bool:
    return unstorable_text_at(value) is not None


class DecimalJSONParser(JSONParser):
    """JSON numbers become Decimal, never float: 99.99 stays 99.99."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = safe_json.loads(stream.read().decode(encoding), decimals=True)
        except safe_json.JsonRefused as exc:
            raise ApiError(exc.code, exc.message) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from None
        found = unstorable_text_at(data)
        if found is not None:
            problem, field = found
            # The field-level code DRF's own text fields use, with the field it is in.
            if problem == "nul":
                raise ApiError("null_characters_not_allowed", "Text may not contain NUL characters.", field=field)
            raise ApiError("invalid_json", "The body holds an unpaired surrogate.", field=field)
        return data


class AnyContentTypeJSONParser(DecimalJSONParser):
    """The seed's browser snippet posts JSON without a Content-Type (fetch sends text/plain)."""

    media_type = "*/*"
