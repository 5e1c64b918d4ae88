"""drf-spectacular postprocessing for the webhook endpoint bodies: what the server checks, in the schema."""

from __future__ import annotations

from typing import Any

from events_app.services import EVENT_TYPES


def refine_webhook_schema(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """Unknown fields are `400 parameter_unknown`, an event type must be one this server emits (or
    "*"), and only http(s) URLs are taken. Whether the host resolves to an allowed address is
    checked when the endpoint is saved; no schema can say that (schemathesis.toml)."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in ("EndpointCreateRequest", "PatchedEndpointUpdateRequest"):
        body = schemas.get(name)
        if body is None:
            continue
        body["additionalProperties"] = False
        props = body["properties"]
        props["event_types"]["items"] = {"type": "string", "enum": ["*", *EVENT_TYPES]}
        props["url"]["pattern"] = "^[hH][tT][tT][pP][sS]?://"
    return result
