"""OpenAPI documents that say what the services really answer: every error is
application/problem+json (RFC 9457), and operations that need a token say so."""
from __future__ import annotations

from typing import Any, Iterator

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, _iter_routes_with_context

from shared.auth import current_principal, optional_principal

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `errors` names each bad field.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_CONTENT = {"application/problem+json": {"schema": _PROBLEM_REF}}


def route_roles(route: APIRoute) -> frozenset[str] | None:
    """The roles a route admits (from require_roles), or None when it declares none."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return frozenset(roles)
        stack.extend(dep.dependencies)
    return None


def route_needs_token(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is current_principal or getattr(dep.call, "allowed_roles", None) is not None:
            return True
        stack.extend(dep.dependencies)
    return False


def _route_takes_token(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is optional_principal:
            return True
        stack.extend(dep.dependencies)
    return False


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(METHOD, path, route) for every API operation, through included routers (FastAPI keeps
    them nested; pinned version, see pyproject)."""
    for route, ctx in _iter_routes_with_context(app.routes):
        if not isinstance(route, APIRoute):
            continue
        path = ctx.path_format if ctx is not None and ctx.path_format else route.path_format
        methods = ctx.methods if ctx is not None and ctx.methods else route.methods
        for method in sorted(methods):
            yield method, path, route


def install_problem_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(name, None)
        components.setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "HS256 JWT with sub, role, region, name (API.md, Authentication)"}
        routes = {(m, p): r for m, p, r in api_routes(app)}
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                responses["4XX"] = {"description": "Problem (RFC 9457)", "content": _PROBLEM_CONTENT}
                route = routes.get((method.upper(), path))
                if route is not None and route_needs_token(route):
                    op["security"] = [{"bearerAuth": []}]
                elif route is not None and _route_takes_token(route):
                    op["security"] = [{"bearerAuth": []}, {}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
