"""ASGI middleware: correlation ids in and out, request metrics, one access-log line."""
from __future__ import annotations

import time
from typing import Any

from shared import metrics
from shared.logging import correlation_id_var, get_logger, new_correlation_id

log = get_logger("http")
_HEADER = b"x-correlation-id"


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): cheap enough for the hot intake path."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = None
        for k, v in scope.get("headers", ()):
            if k == _HEADER:
                cid = v.decode("latin-1")[:64]
                break
        cid = cid or new_correlation_id()
        token = correlation_id_var.set(cid)
        status = 500
        start = time.perf_counter()

        async def _send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(_HEADER, cid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            metrics.HTTP_REQUESTS.labels(self.service, method, path, str(status)).inc()
            metrics.HTTP_LATENCY.labels(self.service, path).observe(elapsed)
            if status >= 500:
                log.error("http_request", service=self.service, method=method, route=path, status=status,
                          ms=round(elapsed * 1000, 1))
            correlation_id_var.reset(token)
