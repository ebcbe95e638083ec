"""Password hashing (argon2id) and the two signed tokens: the access JWT and the queue token.

Both tokens are HS256 JWTs with the algorithm pinned on decode (``none`` and algorithm
confusion are refused by PyJWT when ``algorithms`` is fixed), and ``exp``, ``iat``, ``iss``,
``aud`` and ``sub`` required and checked. ``typ`` keeps them apart: a queue token is never
accepted as an access token, nor the reverse. A queue token's signature only says who it was
issued to; whether it may pass the gate is decided by the engine's live state on every
request (``Engine.check_gate``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import argon2
import jwt
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST, RFC_9106_HIGH_MEMORY, RFC_9106_LOW_MEMORY

from .errors import ApiError

ALGORITHM = "HS256"
_PROFILES = {
    "rfc9106_low_memory": RFC_9106_LOW_MEMORY,
    "rfc9106_high_memory": RFC_9106_HIGH_MEMORY,
    "cheapest": CHEAPEST,
}


class Passwords:
    """argon2id hashing with the parameters of an RFC 9106 profile.

    Args:
        profile: ``rfc9106_low_memory`` (the default: t=3, 64 MiB), ``rfc9106_high_memory``
            (t=1, 2 GiB) or ``cheapest`` (tests only).
    """

    def __init__(self, profile: str) -> None:
        self._hasher = PasswordHasher.from_parameters(_PROFILES[profile])
        # Verifying against this hash when the email is unknown takes as long as a real
        # check, so response times do not reveal which emails have accounts.
        self._dummy = self._hasher.hash("not a password of anyone")

    def hash(self, password: str) -> str:
        """The argon2id PHC string of ``password`` (salted; slow on purpose)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; compares against a dummy hash when None."""
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current profile's."""
        return self._hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class QueueClaims:
    """What a queue token names: its user, concert and engine token id."""

    user_id: int
    concert_id: int
    token_id: int


class Tokens:
    """Issues and verifies access JWTs and queue tokens.

    Args:
        secret: the HS256 key (at least 32 bytes of entropy).
        issuer, audience: the ``iss`` and ``aud`` claims written and required.
        access_ttl_s, queue_ttl_s: lifetimes in seconds.
    """

    def __init__(
        self, secret: str, issuer: str, audience: str, access_ttl_s: int, queue_ttl_s: int
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.access_ttl_s = access_ttl_s
        self._queue_ttl_s = queue_ttl_s
        # Tokens whose signature and claims were verified, by their exact text: a client
        # sends the same two tokens with every request, and PyJWT takes ~150 us to verify
        # one. A hit still checks `exp`; a forged or altered token is different text.
        self._verified: dict[str, dict[str, Any]] = {}

    def _encode(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = int(time.time())
        claims |= {
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    VERIFIED_MAX = 65_536  # tokens remembered (oldest forgotten first)

    def _decode(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        if cached is not None:
            if cached["exp"] > time.time():  # PyJWT's rule: expired once now >= exp
                return cached
            self._verified.pop(token, None)
            raise jwt.ExpiredSignatureError("Signature has expired")
        claims: dict[str, Any] = jwt.decode(
            token,
            self._secret,
            algorithms=[ALGORITHM],
            audience=self._audience,
            issuer=self._issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "typ"]},
        )
        if isinstance(claims.get("exp"), int | float):
            if len(self._verified) >= self.VERIFIED_MAX:
                self._verified.pop(next(iter(self._verified)), None)
            self._verified[token] = claims
        return claims

    def access_token(self, user_id: int) -> str:
        """A signed access JWT for ``user_id``, valid ``access_ttl_s`` seconds."""
        return self._encode({"sub": str(user_id), "typ": "access"}, self.access_ttl_s)

    def user_of(self, token: str) -> int:
        """The user id of a valid access token.

        Raises:
            ApiError: 401 ``TOKEN_EXPIRED`` or ``UNAUTHENTICATED`` (bad signature, algorithm,
                issuer, audience, type or shape).
        """
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "TOKEN_EXPIRED", "the access token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise ApiError(401, "UNAUTHENTICATED", "the access token is not valid") from exc
        if claims.get("typ") != "access":
            raise ApiError(401, "UNAUTHENTICATED", "not an access token")
        return _positive_int(claims.get("sub"), "UNAUTHENTICATED", 401)

    def queue_token(self, user_id: int, concert_id: int, token_id: int) -> str:
        """A signed queue token naming the user, the concert and the engine token id."""
        return self._encode(
            {"sub": str(user_id), "typ": "queue", "cid": concert_id, "tid": token_id},
            self._queue_ttl_s,
        )

    def queue_claims(self, token: str) -> QueueClaims:
        """The claims of a validly signed queue token (liveness is the engine's to decide).

        Raises:
            ApiError: 403 ``QUEUE_TOKEN_EXPIRED`` (signature lifetime over) or
                ``QUEUE_TOKEN_INVALID`` (forged, malformed, or not a queue token).
        """
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(403, "QUEUE_TOKEN_EXPIRED", "the queue token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise ApiError(403, "QUEUE_TOKEN_INVALID", "the queue token is not valid") from exc
        if claims.get("typ") != "queue":
            raise ApiError(403, "QUEUE_TOKEN_INVALID", "not a queue token")
        return QueueClaims(
            user_id=_positive_int(claims.get("sub"), "QUEUE_TOKEN_INVALID", 403),
            concert_id=_positive_int(claims.get("cid"), "QUEUE_TOKEN_INVALID", 403),
            token_id=_positive_int(claims.get("tid"), "QUEUE_TOKEN_INVALID", 403),
        )


def _positive_int(value: object, code: str, status: int) -> int:
    if isinstance(value, bool):
        value = None
    try:
        number = int(value) if isinstance(value, (int, str)) else 0
    except ValueError:
        number = 0
    if not 0 < number < 2**63:
        raise ApiError(status, code, "the token's claims are malformed")
    return number
