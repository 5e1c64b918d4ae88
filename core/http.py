"""The one error shape of the API: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from core import errors

# DRF's generic codes get the field name in front ("amount_required"); our own codes stand alone.
_GENERIC_CODES = {
    "required", "invalid", "null", "blank", "max_length", "min_length", "max_value", "min_value",
    "max_digits", "max_decimal_places", "max_whole_digits", "invalid_choice", "not_a_list", "empty",
    "does_not_exist", "incorrect_type", "date", "datetime", "make_aware", "overflow", "unique",
}


class ApiError(exceptions.APIException):
    """An error the API layer answers with directly (views, authentication, parsers).

    Services never raise it: they raise core.errors, which api_exception_handler maps here.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None, status_code: int = 400) -> None:
        self.status_code = status_code
        self.error_code = code
        self.field = field
        super().__init__(detail=message, code=code)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(code: str, message: str, *, field: str | None = None, status_code: int = 400) -> JsonResponse:
    """For plain Django views (webhooks) that answer in the API's shape."""
    return JsonResponse(error_body(code, message, field), status=status_code)


def _first_validation_error(detail: Any, path: str | None = None) -> tuple[str | None, exceptions.ErrorDetail]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = key if key != "non_field_errors" else None
            if path and sub:
                sub = f"{path}.{sub}"
            return _first_validation_error(value, sub or path)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], path)
    return path, detail


# How each kind of domain refusal is answered.
DOMAIN_STATUS: dict[type[errors.DomainError], int] = {
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.Conflict: status.HTTP_409_CONFLICT,
    errors.Unprocessable: status.HTTP_422_UNPROCESSABLE_ENTITY,
    errors.Forbidden: status.HTTP_403_FORBIDDEN,
    errors.TooLarge: status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    errors.Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    errors.UpstreamFailed: status.HTTP_502_BAD_GATEWAY,
    errors.Unauthenticated: status.HTTP_401_UNAUTHORIZED,
}


def domain_status(exc: errors.DomainError) -> int:
    return next((code for kind, code in DOMAIN_STATUS.items() if isinstance(exc, kind)), status.HTTP_400_BAD_REQUEST)


def api_error(exc: errors.DomainError) -> ApiError:
    """The API's answer to a domain refusal (for views that need the exception itself)."""
    return ApiError(exc.code, exc.message, field=exc.field, status_code=domain_status(exc))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, errors.DomainError):
        exc = api_error(exc)
    if isinstance(exc, ApiError):
        response = Response(error_body(exc.error_code, str(exc.detail), exc.field), status=exc.status_code)
        # Set by DRF on authentication failures: a 401 names the scheme it expects.
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        return response
    if isinstance(exc, exceptions.ValidationError):
        field, detail = _first_validation_error(exc.detail)
        code = getattr(detail, "code", "invalid") or "invalid"
        if code in _GENERIC_CODES and field:
            code = f"{field.split('.')[0]}_{code}"
        return Response(error_body(code, str(detail), field), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("body_too_large", "The body is larger than the upload limit."),
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    # Imported here: rest_framework.views imports the authentication classes, which import us.
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Request failed."
        if isinstance(exc, exceptions.ParseError):
            code = "invalid_json"
        elif isinstance(exc, exceptions.UnsupportedMediaType):
            code = "unsupported_media_type"
        elif isinstance(exc, exceptions.Throttled):
            code = "rate_limited"
        response.data = error_body(code, message)
    return response


def handler400(request, exception=None):  # noqa: ARG001 - Django's handler signature
    return error_response("bad_request", "Bad request.", status_code=400)


def handler403(request, exception=None):  # noqa: ARG001
    return error_response("forbidden", "Forbidden.", status_code=403)


def handler404(request, exception=None):  # noqa: ARG001 - Django's handler signature
    return error_response("not_found", "Not found.", status_code=404)


def handler500(request):  # noqa: ARG001
    return error_response("server_error", "Internal error. It has been logged.", status_code=500)
