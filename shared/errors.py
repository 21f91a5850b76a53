"""Errors as RFC 9457 problem+json: every 4xx names the bad fields, no 5xx leaks a trace."""
from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("errors")


class ProblemError(Exception):
    """A domain or request error that maps to one problem+json answer."""

    status: int = 400
    title: str = "Bad request"
    type: str = "about:blank"

    def __init__(self, detail: str = "", *, errors: list[dict[str, str]] | None = None,
                 status: int | None = None, title: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or (title or self.title)
        self.errors = errors or []
        self.headers = headers
        self.extra = extra or {}
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title


class InvalidInput(ProblemError):
    status = 422
    title = "Invalid input"

    @classmethod
    def field(cls, field: str, message: str) -> "InvalidInput":
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str = "A valid bearer token is required", **kw: Any):
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(ProblemError):
    status = 403
    title = "Forbidden"


class NotFound(ProblemError):
    status = 404
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"


def problem_body(status: int, title: str, detail: str, *, errors: list[dict[str, str]] | None = None,
                 type_: str = "about:blank", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    if extra:  # never in place of a standard member (a problem's "status" is its HTTP status)
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def problem_of(exc: ProblemError) -> dict[str, Any]:
    """The problem+json body of a domain error (also one item's answer inside a batch)."""
    return problem_body(exc.status, exc.title, exc.detail, errors=exc.errors, type_=exc.type, extra=exc.extra)


def problem_response(status: int, title: str, detail: str, *, errors: list[dict[str, str]] | None = None,
                     type_: str = "about:blank", headers: dict[str, str] | None = None,
                     extra: dict[str, Any] | None = None) -> JSONResponse:
    body = problem_body(status, title, detail, errors=errors, type_=type_, extra=extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        # pydantic puts the failing union/validator name last for some errors; keep the field path.
        out.append({"field": _field_path(loc), "message": str(err.get("msg", "invalid")).removeprefix("Value error, ")})
    return out


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return JSONResponse(problem_of(exc), status_code=exc.status, media_type=PROBLEM_JSON, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(422, "Invalid input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail) if exc.status_code != 404 else "Not found",
                                str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return problem_response(500, "Internal error", "The request could not be completed; it was logged.")
