"""Domain errors: what a service refuses, with a code a program can branch on.

Services, selectors and providers raise these; they know nothing of HTTP. The API layer
(core/http.py) maps each kind to a status code, and only it speaks HTTP.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses: bad input, by default."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(DomainError):
    """What was asked for does not exist, or is not the caller's to see."""


class Conflict(DomainError):
    """The request is fine, but the object's state refuses it (already paid, already revoked)."""


class Unprocessable(DomainError):
    """Well-formed, and still not something that can be done (a transaction that pays elsewhere)."""


class Forbidden(DomainError):
    """Not allowed for this caller or in this mode."""


class TooLarge(DomainError):
    """A body or a list beyond what we accept."""


class Unavailable(DomainError):
    """Something we depend on is not there (not configured, a chain node down): try again later."""


class UpstreamFailed(DomainError):
    """A provider we called answered with an error of its own."""


class Unauthenticated(DomainError):
    """The caller did not prove who it is."""
