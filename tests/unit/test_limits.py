"""Abuse limits: body size (413) and per-client rate limits with Retry-After (429)."""
import httpx
from fastapi import FastAPI

from shared.limits import BodySizeLimit, RateLimit, TokenBucket


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/assessments")
    async def calc(body: dict) -> dict:
        return {"ok": True}

    app.add_middleware(BodySizeLimit, max_bytes=1000)
    app.add_middleware(RateLimit, routes={("POST", "/v1/assessments")}, rate=1.0, burst=3)
    return app


async def test_large_body_is_refused_with_problem_json():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as c:
        r = await c.post("/v1/assessments", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"


async def test_public_endpoint_is_rate_limited_per_client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as c:
        codes = [(await c.post("/v1/assessments", json={})).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = await c.post("/v1/assessments", json={})
        assert int(r.headers["retry-after"]) >= 1
        other = await c.post("/v1/assessments", json={}, headers={"Authorization": "Bearer another-client-token"})
        assert other.status_code == 200


def test_token_bucket_refills():
    b = TokenBucket(rate=2.0, burst=1)
    assert b.take("k", now=0.0) == 0
    assert b.take("k", now=0.1) > 0
    assert b.take("k", now=0.6) == 0
