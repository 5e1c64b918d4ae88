"""Access-link tokens: PyJWT, HS256, signed with JWT_SECRET_KEY.

A token is re-signed from its AccessLink row whenever it is needed (same claims, same
bytes), so the database never stores a bearer credential, only its `jti`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jwt
from django.conf import settings

AUDIENCE = "access"
ISSUER = "payments"
ALGORITHM = "HS256"


def token_encode(*, jti: uuid.UUID, session_id: uuid.UUID, issued_at: int, expires_at: int,
                 audience: str = AUDIENCE) -> str:
    claims = {"iss": ISSUER, "aud": audience, "sub": str(session_id), "jti": str(jti), "iat": issued_at,
              "exp": expires_at}
    return jwt.encode(claims, settings.JWT_SECRET_KEY, algorithm=ALGORITHM)


class TokenExpired(Exception):
    pass


class TokenInvalid(Exception):
    pass


@dataclass(frozen=True)
class TokenClaims:
    jti: uuid.UUID
    session_id: str


def token_decode(token: str) -> TokenClaims:
    """Verify signature, audience and expiry; raise TokenExpired (410) or TokenInvalid (401)."""
    if not token or len(token) > 2048:
        raise TokenInvalid("malformed")
    try:
        claims = jwt.decode(token, settings.JWT_SECRET_KEY, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=ISSUER, options={"require": ["exp", "aud", "jti", "iss", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenExpired from None
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(type(exc).__name__) from None
    try:
        return TokenClaims(jti=uuid.UUID(str(claims["jti"])), session_id=str(claims["sub"]))
    except ValueError:
        raise TokenInvalid("jti") from None
