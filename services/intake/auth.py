"""Intake's role dependency: the kernel's ``require_roles`` semantics (design/API.md, FIXED:
401 without a valid bearer token, 403 for a role outside ``roles``) with verified tokens
remembered until they expire.

A client sends the same token with every request; verifying its HS256 signature again each
time is a tenth of the hot path's CPU. A token is verified in full by ``shared.auth.decode_token``
the first time it is seen; later requests with the very same string reuse that result until the
token's ``exp``. The cache lives per app (per secret) and is bounded.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import jwt
from fastapi import Request

from shared.auth import ROLES, Principal, decode_token
from shared.errors import Forbidden, Unauthorized


class TokenCache:
    def __init__(self, max_entries: int = 10000) -> None:
        self.max_entries = max_entries
        self._tokens: dict[tuple[str, str], tuple[Principal, float]] = {}

    def principal(self, token: str, secret: str) -> Principal:
        key = (secret, token)
        hit = self._tokens.get(key)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        principal = decode_token(token, secret)  # full verification; raises Unauthorized
        exp = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        if len(self._tokens) >= self.max_entries:
            self._tokens.clear()
        self._tokens[key] = (principal, exp)
        return principal


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise Unauthorized()
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


def principal_of(request: Request) -> Principal:
    cache: TokenCache = request.app.state.token_cache
    principal = cache.principal(_bearer_token(request), request.app.state.settings.auth_jwt_secret)
    request.state.principal = principal  # as shared.auth does: middleware may name the actor
    return principal


def require_roles(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """Like ``shared.auth.require_roles``; discoverable by shared/openapi.py (``allowed_roles``)."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"require_roles needs known roles, got {list(roles)}")
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if principal.role not in allowed:
            raise Forbidden(f"role '{principal.role}' may not do this; allowed: {', '.join(roles)}")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    return dependency
