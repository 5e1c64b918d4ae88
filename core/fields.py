"""Serializer fields that take only what the OpenAPI schema says they take."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class JsonBooleanField(serializers.BooleanField):
    """A JSON true or false. DRF's BooleanField also takes "yes", "on", 1 or "False": the schema says
    `type: boolean`, so a client's string or number is a 400, not a guess."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data
