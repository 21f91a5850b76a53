"""The floor for `POST /v1/applications` (PERFORMANCE.md): a minimal FastAPI endpoint doing one
asyncpg INSERT of the request body, nothing else. Served exactly like intake by
bench/intake_applications.py (uvicorn, 1 worker, uvloop, httptools).

Environment: REFERENCE_DSN (postgresql://user@host:port/db).
"""
from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

import asyncpg
from fastapi import FastAPI, Request, Response

DSN = os.environ.get("REFERENCE_DSN", "postgresql://postgres@127.0.0.1:5432/test")
state: dict[str, asyncpg.Pool] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Same pool size as intake's SQLAlchemy engine (pool_size 20 + max_overflow 20).
    pool = await asyncpg.create_pool(DSN, min_size=20, max_size=40)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS ref_applications ("
                           "id uuid PRIMARY KEY, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
    state["pool"] = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/applications", status_code=201)
async def create(request: Request) -> Response:
    body = await request.body()
    app_id = uuid.uuid4()
    async with state["pool"].acquire() as conn:
        await conn.execute("INSERT INTO ref_applications (id, body) VALUES ($1, $2::jsonb)", app_id, body.decode())
    return Response(b'{"application_id":"%s"}' % str(app_id).encode(), status_code=201,
                    media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
