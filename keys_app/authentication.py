from __future__ import annotations

import hmac

from rest_framework import authentication, exceptions

from core.http import ApiError
from core.throttling import limits_counted_early
from keys_app.key_cache import key_cache_put
from keys_app.keygen import (
    hash_key,
    looks_like_entitlement_key,
    looks_like_publishable_key,
    parse_key,
    parse_publishable_key,
)
from keys_app.models import ApiKey
from keys_app.publishable import publishable_key_lookup
from keys_app.selectors import entitlement_key_is_known, key_cache_key, key_from_cache, key_get_by_hash
from keys_app.services import key_touch

HEADER = "HTTP_X_API_KEY"


class ApiKeyRejected(ApiError, exceptions.AuthenticationFailed):
    """An AuthenticationFailed, so that DRF answers it with a WWW-Authenticate header."""


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiKeyRejected(code, message, status_code=401)


def _not_merchant() -> ApiError:
    return _unauthorized("key_not_merchant", "This is an entitlement key that a customer bought: it is for the "
                         "merchant's own service to verify (POST /keys/verify), not a key to this API.")


def _publishable_elsewhere() -> ApiError:
    return _unauthorized("key_publishable", "This is a publishable key: it may only start a checkout from a "
                         "payment link (POST /create_session with {\"payment_link\": …}). Use your secret "
                         "key from your server for everything else.")


def _secret_in_browser() -> ApiError:
    # Refused before the key is looked up: a page must not learn whether the key it holds works.
    return _unauthorized("secret_key_in_browser", "A secret key was sent from a web page (the request has an "
                         "Origin header). Never put a secret key in a page: use your publishable key (pk_…) "
                         "with a payment link, POST /create_session {\"payment_link\": \"plink_…\"}, or link "
                         "to /pay/{slug}. Roll this secret key if the page was public.")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: sk_test_…`. The request's user is the merchant Account; auth is the ApiKey."""

    def authenticate(self, request):
        raw = request.META.get(HEADER)
        if raw is None:
            raise _unauthorized("api_key_missing", "Send your API key in the X-API-Key header.")
        raw = raw.strip()
        if looks_like_entitlement_key(raw):
            raise _not_merchant()
        if parse_key(raw) is None:
            if looks_like_publishable_key(raw):
                return self._publishable(request, raw)
            raise _unauthorized("api_key_malformed", "The API key is malformed (wrong format or checksum).")
        if "HTTP_ORIGIN" in request.META:
            raise _secret_in_browser()
        digest = hash_key(raw)
        # The key's limits are counted by its hash, in the same round trip as the cached lookup.
        request.api_key_hash = digest
        view = (getattr(request, "parser_context", None) or {}).get("view")
        key = key_from_cache(limits_counted_early(request, view, fetch=key_cache_key(digest)))
        cached = key is not None
        if not cached:
            key = key_get_by_hash(key_hash=digest)
        # The lookup is by a hash of the key, so timing reveals nothing about stored keys;
        # the comparison guards against a collation-insensitive match all the same.
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            # A buyer's key from before entitlement keys had their own prefix (sk_) is still
            # a buyer's key: say so, as for an ek_ key. Only failed lookups pay for this query.
            if entitlement_key_is_known(key_hash=digest):
                raise _not_merchant()
            raise _unauthorized("api_key_invalid", "Unknown API key.")
        if key.status == ApiKey.Status.REVOKED:
            raise _unauthorized("api_key_revoked", "This API key has been revoked.")
        if key.is_expired():
            raise _unauthorized("api_key_expired", "This API key has expired.")
        key_touch(key=key)
        if not cached:
            key_cache_put(key=key)
        return key.account, key

    def _publishable(self, request, raw: str):
        """A `pk_` key: only for a view that takes one (POST /create_session, with a payment link);
        auth is then a PublishableKey, which that view answers on its own narrow path."""
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "accepts_publishable_key", False):
            if parse_publishable_key(raw) is None:
                raise _unauthorized("api_key_malformed", "The API key is malformed (wrong format or checksum).")
            raise _publishable_elsewhere()
        key = publishable_key_lookup(raw=raw)
        if key is None:
            raise _unauthorized("api_key_invalid", "Unknown publishable key.")
        return key.account, key

    def authenticate_header(self, request):
        return "X-API-Key"

