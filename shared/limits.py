"""Abuse limits: request body size, per-client rate limits on public endpoints (429 + Retry-After)."""
from __future__ import annotations

import math
import time
from typing import Any

import orjson

from shared.errors import PROBLEM_JSON


async def _problem(send: Any, status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail, "errors": []})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 for bodies over ``max_bytes`` — by Content-Length up front, or while streaming."""

    def __init__(self, app: Any, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt_prefixes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (self.exempt and scope.get("path", "").startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", ()):
            if k == b"content-length" and v.isdigit() and int(v) > self.max_bytes:
                await _problem(send, 413, "Payload too large", f"request bodies are limited to {self.max_bytes} bytes")
                return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _problem(send, 413, "Payload too large", f"request bodies are limited to {self.max_bytes} bytes")


class _TooLarge(Exception):
    pass


class TokenBucket:
    """Per-key token buckets (in memory, per process): ``rate`` requests/s with bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._state.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            if len(self._state) >= self.max_keys and key not in self._state:
                self._state.clear()  # bounded memory under a flood of distinct keys
            self._state[key] = (tokens - 1, now)
            return 0.0
        self._state[key] = (tokens, now)
        return (1 - tokens) / self.rate


class RateLimit:
    """429 problem+json with Retry-After for (method, path) pairs that the public can call."""

    def __init__(self, app: Any, routes: set[tuple[str, str]], rate: float, burst: int) -> None:
        self.app = app
        self.routes = routes
        self.bucket = TokenBucket(rate, burst)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (scope.get("method"), scope.get("path")) in self.routes:
            wait = self.bucket.take(_client_key(scope))
            if wait > 0:
                await _problem(send, 429, "Too many requests", "slow down and retry later",
                               [(b"retry-after", str(max(1, math.ceil(wait))).encode())])
                return
        await self.app(scope, receive, send)


def _client_key(scope: dict[str, Any]) -> str:
    for k, v in scope.get("headers", ()):
        if k == b"authorization":
            # The token (not its claims: it is unverified here) identifies a logged-in client.
            return "t:" + v.decode("latin-1")[-32:]
    client = scope.get("client") or ("unknown", 0)
    return "ip:" + str(client[0])
