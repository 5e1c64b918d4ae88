"""An entitlement key opens no merchant endpoint: one test per endpoint of the URL conf, so that a
new endpoint is covered the moment it is added."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from keys_app.authentication import ApiKeyAuthentication

# What a path parameter is filled with: a plausible value, so that only the key is wrong.
SAMPLE = {"session_id": str(uuid.UUID(int=1)), "key_id": str(uuid.UUID(int=2))}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def merchant_endpoints() -> list[tuple[str, str]]:
    """(method, path) of every operation whose view authenticates merchants by X-API-Key."""
    found = []
    for route, callback in _walk(get_resolver().url_patterns):
        view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        if not (isinstance(view, type) and issubclass(view, APIView)):
            continue
        if not any(issubclass(auth, ApiKeyAuthentication) for auth in view.authentication_classes):
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE.get(m.group(1), "x"), route)
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method):
                found.append((method.upper(), path))
    return found


ENDPOINTS = merchant_endpoints()


def test_the_walk_finds_the_merchant_endpoints_old_and_new():
    assert {("POST", "/create_session"), ("PATCH", "/account"), ("GET", "/sessions"), ("POST", "/keys/verify"),
            ("GET", "/keys"), (("POST", f"/keys/{SAMPLE['key_id']}/rotate"))} <= set(ENDPOINTS)
    # public endpoints are not merchant endpoints
    assert not [path for _, path in ENDPOINTS if path.endswith("/status") or path.startswith("/webhooks/")]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
@pytest.mark.parametrize("shape", ["issued", "malformed"])
def test_an_entitlement_key_gets_401_key_not_merchant(merchant, method, path, shape):
    from keys_app import keygen
    from keys_app.entitlements import entitlement_key_issue

    if shape == "issued":
        key = entitlement_key_issue(account=merchant, session_id=uuid.uuid4(), customer_email="b@example.com",
                                    actor="test").plaintext
    else:
        key = "ek_test_" + "x" * 8
    assert keygen.looks_like_entitlement_key(key)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)

    response = getattr(client, method.lower())(path, {}, format="json")

    assert response.status_code == 401, (method, path, response.content)
    assert response.json()["error"]["code"] == "key_not_merchant"
    assert response["WWW-Authenticate"] == "X-API-Key"
