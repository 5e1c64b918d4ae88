"""Abuse limits: request rates per API key and per client IP, counted in the Django cache.

In production the cache is Redis (REDIS_URL), so every web process shares the counters. When
Redis does not answer, each process counts on its own (a per-process limiter) rather than letting
everything through. A refused request gets 429 with Retry-After and the error code `rate_limited`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache as default_cache
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest, HttpResponse
from redis.commands.core import Script
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from core.http import error_response

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

    def allow_request(self, request, view) -> bool:
        allowed, self.wait_seconds = check_limits([self], request, view)
        return allowed

    def wait(self) -> float | None:
        return self.wait_seconds


# GET the value at KEYS[1] (false when there is none), then INCR each further key; a counter's
# first request opens its window with an expiry. Atomic in Redis (all the keys of a request live on
# one server: Django's cache writes to its first). The GET rides along so that an API request's
# key lookup and its limits cost one round trip between them.
_COUNT_SCRIPT = Script(None, b"""
local result = {redis.call('GET', KEYS[1]) or false}
for i = 2, #KEYS do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('EXPIRE', KEYS[i], ARGV[i - 1]) end
  result[i] = n
end
return result
""")


def _count_windows(cache, windows: list[tuple[str, int]], fetch: str | None = None) -> tuple[Any, list[int]]:
    """Add one to each (key, lifetime) counter; return the cached value at `fetch` (None when
    absent or not asked) and the new counts."""
    get_client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if get_client is not None:
        # Redis: every counter in one command (a pipeline of SET NX + INCR per limit cost twice
        # the CPU to pack and parse).
        full_keys = [cache.make_and_validate_key(key) for key, _ in windows]
        fetched_key = cache.make_and_validate_key(fetch) if fetch is not None else full_keys[0]
        client = get_client(full_keys[0], write=True)
        raw, *counts = _COUNT_SCRIPT(keys=[fetched_key, *full_keys], args=[lifetime for _, lifetime in windows],
                                     client=client)
        fetched = cache._cache._serializer.loads(raw) if fetch is not None and raw is not None else None
        return fetched, counts
    counts = []
    for key, lifetime in windows:
        try:
            counts.append(cache.incr(key))
        except ValueError:
            # The window's first request (or its counter just expired).
            counts.append(1 if cache.add(key, 1, timeout=lifetime) else cache.incr(key))
    return (cache.get(fetch) if fetch is not None else None), counts


# The fallback when the shared cache is down; bounded (LocMemCache culls the oldest entries).
LOCAL_COUNTERS = LocMemCache("throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 50_000}})


def check_limits(throttles: list[_Throttle], request, view) -> tuple[bool, float | None]:
    """Count this request against every limit at once: (allowed, seconds to wait when refused)."""
    allowed, wait, _ = _count_and_fetch(throttles, request, view)
    return allowed, wait


def _count_and_fetch(throttles: list[_Throttle], request, view, fetch: str | None = None
                     ) -> tuple[bool, float | None, Any]:
    """check_limits, also reading the cached value at `fetch` in the same round trip (None on a
    miss, or when not asked)."""
    now = time.time()
    windows = []
    for throttle in throttles:
        key = throttle.get_cache_key(request, view)
        if key is not None:
            window = int(now // throttle.duration)
            windows.append((throttle, f"{key}:{window}", window))
    cache = throttles[0].cache if throttles else default_cache
    if not windows:
        return True, None, _cache_get(cache, fetch)
    lifetimes = [(key, t.duration + 1) for t, key, _ in windows]
    try:
        fetched, counts = _count_windows(cache, lifetimes, fetch)
    except (RedisError, OSError):
        # The shared counters are down with Redis. A payment must not fail for want of them, and
        # the limits must not switch off either (the public pay and simulate actions included):
        # each process counts alone until Redis is back, the same limit per process.
        logger.warning("rate limits counted per process: cache unavailable",
                       extra={"scopes": [t.scope for t, _, _ in windows]})
        fetched = None
        _, counts = _count_windows(LOCAL_COUNTERS, lifetimes)
    waits = [(window + 1) * t.duration - now
             for (t, _, window), count in zip(windows, counts, strict=True) if count > t.num_requests]
    return (False, max(waits), fetched) if waits else (True, None, fetched)


def _cache_get(cache, key: str | None) -> Any:
    if key is None:
        return None
    try:
        return cache.get(key)
    except (RedisError, OSError):
        return None


def limits_counted_early(request, view, *, fetch: str) -> Any:
    """Count the view's limits now, before its throttle check, and read `fetch` from the cache in
    the same round trip (an API key's authentication reads its cached key so).

    The verdict waits on the request; the view's throttle check then answers from it instead of
    counting again. Returns the cached value at `fetch`, None on a miss. A view whose throttles are
    not one Limits is left to count them itself.
    """
    # The declared throttles, not get_throttles(): a view may choose its throttles by the request's
    # authentication, which is what is running now. A throttle the view chooses otherwise finds
    # no verdict of its own kind and counts itself.
    classes = list(getattr(view, "throttle_classes", None) or [])
    if len(classes) != 1 or not issubclass(classes[0], Limits):
        return _cache_get(default_cache, fetch)
    limits_ = classes[0]
    allowed, wait, fetched = _count_and_fetch([cls() for cls in limits_.members], request, view, fetch)
    request._limits_verdict = (limits_, allowed, wait)
    return fetched


class Limits(BaseThrottle):
    """Several limits checked as one throttle, so a request costs one round trip to Redis."""

    members: tuple[type[_Throttle], ...] = ()

    def allow_request(self, request, view) -> bool:
        verdict = getattr(request, "_limits_verdict", None)
        if verdict is not None and verdict[0] is type(self):
            _, allowed, self.wait_seconds = verdict
            return allowed
        allowed, self.wait_seconds = check_limits([cls() for cls in self.members], request, view)
        return allowed

    def wait(self) -> float | None:
        return self.wait_seconds


def limits(name: str, *members: type[_Throttle]) -> type[Limits]:
    return type(name, (Limits,), {"members": members, "__module__": __name__})


class _KeyThrottle(_Throttle):
    def get_cache_key(self, request, view):
        # The key's hash, which the authentication sets before it looks the key up, so that the
        # limits can be counted in the lookup's round trip (limits_counted_early).
        key_hash = getattr(request, "api_key_hash", None)
        if not key_hash:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"key:{key_hash}"}


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
    """A flood guard only, far above what one office or mobile carrier's NAT polls."""

    scope = "status_ip"


class _SessionThrottle(_Throttle):
    """Per session id in the URL, whoever asks."""

    def get_cache_key(self, request, view):
        session_id = (getattr(view, "kwargs", None) or {}).get("session_id")
        try:
            # Anything but a UUID names no session (the view answers 404; the IP limit still counts).
            ident = str(uuid.UUID(str(session_id)))
        except ValueError:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"session:{ident}"}


class StatusSessionThrottle(_SessionThrottle):
    """Status polling, per session: a checkout page polls its own session, so 200 customers behind
    one address are 200 budgets, not one."""

    scope = "status_session"


class CheckoutIpThrottle(_IpThrottle):
    scope = "checkout_ip"


class CheckoutSessionThrottle(_SessionThrottle):
    """One session's checkout actions, whoever sends them."""

    scope = "checkout_session"


class VerifyKeyThrottle(_KeyThrottle):
    """POST /keys/verify, per merchant key: merchants call it for every request their own API serves."""

    scope = "verify_key"


class PayLinkIpThrottle(_IpThrottle):
    """Sessions started from payment links (GET /pay/{slug}, a publishable key), per client IP."""

    scope = "pay_link_ip"


class PaymentLinkThrottle(_Throttle):
    """Sessions started from one payment link, whoever starts them."""

    scope = "pay_link"

    def get_cache_key(self, request, view):
        ident = (getattr(view, "kwargs", None) or {}).get("link_id")
        if ident is None:
            data = getattr(request, "data", None)
            ident = data.get("payment_link") if isinstance(data, dict) else None
        if not isinstance(ident, str) or not ident or len(ident) > 32:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"link:{ident}"}


class AccessLinksIpThrottle(_IpThrottle):
    scope = "access_links_ip"


class AccessLinksAddressThrottle(_Throttle):
    """"Email me my access links" for one address, whoever asks: a mailbox is not to be flooded."""

    scope = "access_links_address"

    def get_cache_key(self, request, view):
        address = (request.POST.get("email") or "").strip().lower()
        if not address:
            return None
        # A digest: the cache holds no addresses.
        ident = hashlib.sha256(address.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": f"address:{ident}"}


ApiLimits = limits("ApiLimits", ApiKeyThrottle, ApiIpThrottle)
CreateSessionLimits = limits("CreateSessionLimits", ApiKeyThrottle, ApiIpThrottle, CreateSessionKeyThrottle,
                             CreateSessionIpThrottle)
StatusLimits = limits("StatusLimits", StatusSessionThrottle, StatusIpThrottle)
CheckoutLimits = limits("CheckoutLimits", CheckoutIpThrottle, CheckoutSessionThrottle)
CREATE_SESSION_THROTTLES = [CreateSessionLimits]
STATUS_THROTTLES = [StatusLimits]
CHECKOUT_THROTTLES = [CheckoutLimits]
VerifyLimits = limits("VerifyLimits", VerifyKeyThrottle)
VERIFY_THROTTLES = [VerifyLimits]
PayLinkLimits = limits("PayLinkLimits", PayLinkIpThrottle, PaymentLinkThrottle)
PAY_LINK_THROTTLES = [PayLinkLimits]
AccessLinksLimits = limits("AccessLinksLimits", AccessLinksIpThrottle, AccessLinksAddressThrottle)
ACCESS_LINKS_THROTTLES = [AccessLinksLimits]


def rate_limited_response(wait: float | None) -> HttpResponse:
    seconds = max(1, math.ceil(wait or 1))
    response = error_response("rate_limited", f"Too many requests. Retry in {seconds} s.", status_code=429)
    response["Retry-After"] = str(seconds)
    return response


class _ViewKwargs:
    def __init__(self, kwargs: dict) -> None:
        self.kwargs = kwargs


def throttle_view(*throttle_classes: type[BaseThrottle]) -> Callable:
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
