"""Bearer-token authentication (HS256 JWT) and region scopes, as fixed in design/API.md.

A token carries ``sub``, ``role``, ``region`` (12-digit administrative code) and ``name``; it
acts only inside its region and the regions below it. Missing or invalid token: 401.
Wrong role or region: 403. ``python -m shared.auth`` mints tokens for development.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request

from shared.errors import Forbidden, Unauthorized

ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 8 * 3600
REQUIRED_CLAIMS = ("exp", "sub", "role", "region", "name")

ROLES: tuple[str, ...] = (
    "applicant",
    "hotline_operator",
    "village_coordinator",
    "township_clerk",
    "township_office_director",
    "township_office_leader",
    "township_finance_leader",
    "county_civil_affairs",
    "county_finance",
    "partner_system",
    "monitoring_operator",
)


# --- regions (12-digit 统计用区划代码) -------------------------------------------------

# Significant digits per level: province 52|0000000000, city 5227|00000000,
# county 522701|000000, township 522701001|000, village all 12.
_LEVEL_DIGITS = (("province", 2), ("city", 4), ("county", 6), ("township", 9), ("village", 12))


def is_region_code(s: object) -> bool:
    return (isinstance(s, str) and len(s) == 12 and s.isascii() and s.isdigit()
            and s[:2] != "00")


def _checked(code: str) -> str:
    if not is_region_code(code):
        raise ValueError(f"not a 12-digit region code: {code!r}")
    return code


def _significant_digits(code: str) -> int:
    for _, digits in _LEVEL_DIGITS:
        if code[digits:].strip("0") == "":
            return digits
    return 12  # unreachable: the village level has no trailing part


def region_level(code: str) -> str:
    """``province`` | ``city`` | ``county`` | ``township`` | ``village``."""
    digits = _significant_digits(_checked(code))
    return next(level for level, n in _LEVEL_DIGITS if n == digits)


def region_prefix(code: str) -> str:
    """The digits that identify the region at its level (``522701`` for a county)."""
    return code[:_significant_digits(_checked(code))]


def region_covers(scope: str, region: str) -> bool:
    """True when ``region`` is ``scope`` or inside it; False for any malformed code (fail closed)."""
    if not (is_region_code(scope) and is_region_code(region)):
        return False
    return region.startswith(region_prefix(scope))


def township_of(code: str) -> str:
    """The township (乡镇/街道) containing a township- or village-level code."""
    if _significant_digits(_checked(code)) < 9:
        raise ValueError(f"{code} is a {region_level(code)}, not inside one township")
    return code[:9] + "000"


def county_of(code: str) -> str:
    """The county (县/区) containing a code at county level or below."""
    if _significant_digits(_checked(code)) < 6:
        raise ValueError(f"{code} is a {region_level(code)}, not inside one county")
    return code[:6] + "000000"


# --- tokens --------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of a bearer token."""

    sub: str
    role: str
    region: str
    name: str

    def covers(self, region_code: str) -> bool:
        return region_covers(self.region, region_code)


def mint_token(*, secret: str, sub: str, role: str, region: str, name: str,
               ttl_seconds: int = DEFAULT_TTL_SECONDS, now: float | None = None) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    _checked(region)
    issued = int(time.time() if now is None else now)
    claims = {"sub": sub, "role": role, "region": region, "name": name,
              "iat": issued, "exp": issued + int(ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, secret: str) -> Principal:
    """The verified :class:`Principal`, or :class:`Unauthorized` saying what is wrong."""
    try:
        # algorithms pinned: "alg": "none" and algorithm-confusion tokens are refused here.
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": list(REQUIRED_CLAIMS)})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"token lacks the '{exc.claim}' claim") from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized(f"token must be signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("token signature is invalid") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"token is invalid: {exc}") from None
    for claim in ("sub", "role", "region", "name"):
        if not isinstance(claims[claim], str) or not claims[claim]:
            raise Unauthorized(f"token claim '{claim}' must be a non-empty string")
    if claims["role"] not in ROLES:
        raise Unauthorized(f"token has an unknown role {claims['role']!r}")
    if not is_region_code(claims["region"]):
        raise Unauthorized("token region must be a 12-digit region code")
    return Principal(sub=claims["sub"], role=claims["role"], region=claims["region"], name=claims["name"])


# --- FastAPI dependencies ------------------------------------------------------------


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


class _VerifiedTokens:
    """Tokens already verified in full, remembered until their ``exp``: a client sends the same
    token with every request, and the HS256 check was a tenth of the intake hot path's CPU."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._seen: dict[tuple[str, str], tuple[Principal, float]] = {}

    def principal(self, token: str, secret: str) -> Principal:
        hit = self._seen.get((secret, token))
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        principal = decode_token(token, secret)  # full verification; raises Unauthorized
        exp = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        if len(self._seen) >= self.max_entries:
            self._seen.clear()  # bounded under a flood of distinct tokens
        self._seen[(secret, token)] = (principal, exp)
        return principal


_VERIFIED = _VerifiedTokens()


def _principal_from(request: Request, token: str) -> Principal:
    principal = _VERIFIED.principal(token, request.app.state.settings.auth_jwt_secret)
    # Kept on the request so audit and logging middleware can name the actor.
    request.state.principal = principal
    return principal


async def current_principal(request: Request) -> Principal:
    token = _bearer_token(request)
    if token is None:
        raise Unauthorized()
    return _principal_from(request, token)


async def optional_principal(request: Request) -> Principal | None:
    """None without an Authorization header; a header that is present must be valid."""
    token = _bearer_token(request)
    return None if token is None else _principal_from(request, token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def require_roles(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the caller when their role is one of ``roles``, else 403."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(f"require_roles needs known roles, got {list(roles)}")
    allowed = frozenset(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        return ensure_role(principal, roles, allowed)

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]  (read by shared/openapi.py and tests)
    return dependency


def ensure_role(principal: Principal, roles: tuple[str, ...], allowed: frozenset[str] | None = None) -> Principal:
    """The caller when their role is one of ``roles``, else 403 (require_roles' check, also for
    entrypoints that resolve the caller themselves)."""
    if principal.role not in (allowed if allowed is not None else roles):
        raise Forbidden(f"role '{principal.role}' may not do this; allowed: {', '.join(roles)}")
    return principal


async def authorize(request: Request, roles: tuple[str, ...], allowed: frozenset[str] | None = None) -> Principal:
    """What ``Depends(require_roles(*roles))`` gives, without FastAPI's dependency resolution."""
    return ensure_role(await current_principal(request), roles, allowed)


def ensure_region(principal: Principal, region_code: str) -> None:
    """403 unless ``region_code`` is inside the token's region."""
    if not principal.covers(region_code):
        raise Forbidden(f"region {region_code} is outside this token's region {principal.region}")


# --- CLI -----------------------------------------------------------------------------


def demo_tokens(secret: str, region: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> dict[str, str]:
    """One token per role, all for ``region`` (for the embedded run's start-up banner)."""
    return {
        role: mint_token(secret=secret, sub="applicant-demo" if role == "applicant" else f"{role}-demo",
                         role=role, region=region, name=f"demo {role}", ttl_seconds=ttl_seconds)
        for role in ROLES
    }


def _secret_from_env() -> str:
    from shared.settings import DEV_JWT_SECRET

    return os.environ.get("AUTH_JWT_SECRET") or DEV_JWT_SECRET


def _region_arg(value: str) -> str:
    if not is_region_code(value):
        raise argparse.ArgumentTypeError(f"not a 12-digit region code: {value!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.auth",
                                     description="Mint HS256 bearer tokens (secret from AUTH_JWT_SECRET)")
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print one token")
    mint.add_argument("--role", required=True, choices=ROLES)
    mint.add_argument("--region", required=True, type=_region_arg)
    mint.add_argument("--sub", default=None, help="subject id (default: <role>-cli)")
    mint.add_argument("--name", default=None, help="display name (default: the subject)")
    mint.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="lifetime in seconds")
    demo = commands.add_parser("demo", help="print one token per role")
    demo.add_argument("--region", required=True, type=_region_arg)
    demo.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS)
    args = parser.parse_args(argv)

    secret = _secret_from_env()
    if args.command == "mint":
        sub = args.sub or f"{args.role}-cli"
        print(mint_token(secret=secret, sub=sub, role=args.role, region=args.region,
                         name=args.name or sub, ttl_seconds=args.ttl))
    else:
        tokens = demo_tokens(secret, args.region, ttl_seconds=args.ttl)
        width = max(map(len, tokens))
        for role, token in tokens.items():
            print(f"{role:<{width}}  {token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
