"""Abuse limits: request rates per API key and per client IP, counted in the Django cache.

In production the cache is Redis (REDIS_URL), so every web process shares the counters.
A refused request gets 429 with Retry-After and the error code `rate_limited`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from payments_site.errors import error_response

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the address the trusted proxies saw (TRUSTED_PROXY_COUNT hops)."""
    hops = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if hops and forwarded:
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if addresses:
            return addresses[-min(hops, len(addresses))]
    return request.META.get("REMOTE_ADDR") or "unknown"


def login_client_ip(request: HttpRequest) -> str | None:
    """For the admin-login lockout, which stores the address in an IP column: None when unknown."""
    ip = client_ip(request)
    return None if ip == "unknown" else ip


class _Throttle(SimpleRateThrottle):
    """A fixed-window counter: one atomic increment per request.

    DRF's SimpleRateThrottle keeps a list of every request's time and rewrites it on each
    request, which costs O(limit) per request; a counter per window costs O(1).
    """

    def get_ident(self, request) -> str:
        return client_ip(request)

    def get_rate(self):
        # Read at each request so a test (or an operator reloading settings) can change it.
        return settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]

    def __init__(self) -> None:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.wait_seconds: float | None = None

    def _count(self, key: str) -> int:
        get_client = getattr(getattr(self.cache, "_cache", None), "get_client", None)
        if get_client is not None:
            # Redis: INCR creates the counter, so a request costs one round trip (two when it
            # opens a window and sets its expiry).
            full_key = self.cache.make_and_validate_key(key)
            client = get_client(full_key, write=True)
            count = client.incr(full_key)
            if count == 1:
                client.expire(full_key, self.duration + 1)
            return count
        try:
            return self.cache.incr(key)
        except ValueError:
            # The window's first request (or its counter just expired).
            if self.cache.add(key, 1, timeout=self.duration + 1):
                return 1
            return self.cache.incr(key)

    def allow_request(self, request, view) -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        try:
            count = self._count(f"{key}:{window}")
        except (RedisError, OSError):
            # The counters are down with Redis. A payment must not fail for want of a rate
            # limit: let the request through and say so.
            logger.warning("rate limit not checked: cache unavailable", extra={"scope": self.scope})
            return True
        if count <= self.num_requests:
            return True
        self.wait_seconds = (window + 1) * self.duration - now
        return False

    def wait(self) -> float | None:
        return self.wait_seconds


class _KeyThrottle(_Throttle):
    def get_cache_key(self, request, view):
        api_key = getattr(request, "auth", None)
        if api_key is None or not getattr(api_key, "pk", None):
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"key:{api_key.pk}"}


class _IpThrottle(_Throttle):
    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": f"ip:{self.get_ident(request)}"}


class ApiKeyThrottle(_KeyThrottle):
    scope = "api_key"


class ApiIpThrottle(_IpThrottle):
    scope = "api_ip"


class CreateSessionKeyThrottle(_KeyThrottle):
    scope = "create_session_key"


class CreateSessionIpThrottle(_IpThrottle):
    scope = "create_session_ip"


class StatusIpThrottle(_IpThrottle):
    scope = "status_ip"


class CheckoutIpThrottle(_IpThrottle):
    scope = "checkout_ip"


class CheckoutSessionThrottle(_Throttle):
    """One session's checkout actions, whoever sends them."""

    scope = "checkout_session"

    def get_cache_key(self, request, view):
        session_id = (getattr(view, "kwargs", None) or {}).get("session_id")
        if not session_id:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"session:{str(session_id)[:64]}"}


API_THROTTLES = [ApiKeyThrottle, ApiIpThrottle]
CREATE_SESSION_THROTTLES = [*API_THROTTLES, CreateSessionKeyThrottle, CreateSessionIpThrottle]
STATUS_THROTTLES = [ApiIpThrottle, StatusIpThrottle]
CHECKOUT_THROTTLES = [CheckoutIpThrottle, CheckoutSessionThrottle]


def rate_limited_response(wait: float | None) -> HttpResponse:
    seconds = max(1, math.ceil(wait or 1))
    response = error_response("rate_limited", f"Too many requests. Retry in {seconds} s.", status_code=429)
    response["Retry-After"] = str(seconds)
    return response


class _ViewKwargs:
    def __init__(self, kwargs: dict) -> None:
        self.kwargs = kwargs


def throttle_view(*throttle_classes: type[SimpleRateThrottle]) -> Callable:
    """The same limits for a plain Django view (the checkout actions), answered in the API's shape."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            holder = _ViewKwargs(kwargs)
            waits = []
            for cls in throttle_classes:
                throttle = cls()
                if not throttle.allow_request(request, holder):
                    waits.append(throttle.wait())
            if waits:
                return rate_limited_response(max(w or 0 for w in waits))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
