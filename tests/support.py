"""Test helpers: valid identity numbers, tokens, application bodies, running apps in-process."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx
from fastapi import FastAPI
from stdnum.cn import ric

from shared.auth import mint_token
from shared.settings import DEV_JWT_SECRET

COUNTY = "522701000000"
TOWNSHIP = "522701001000"
OTHER_COUNTY = "522702000000"


def make_id(birth: date, seq: int = 1, region6: str = "522701") -> str:
    body = f"{region6}{birth:%Y%m%d}{seq % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def token(role: str, region: str = COUNTY, sub: str | None = None, secret: str = DEV_JWT_SECRET) -> str:
    return mint_token(secret=secret, sub=sub or f"{role}-test", role=role, region=region, name="测试")


def auth(role: str, region: str = COUNTY, sub: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, region, sub)}"}


DIBAO_DOCS = ["id_card", "household_register", "economic_check_authorization", "income_statement"]


def application_body(*, seq: int = 1, channel: str = "window", program: str = "dibao",
                     region: str = TOWNSHIP, documents: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    birth = date(1950, 3, 1)
    body: dict[str, Any] = {
        "channel": channel, "program": program, "region_code": region, "area": "urban",
        "household": {"members": [{
            "person_id": make_id(birth, seq), "relation": "applicant", "birth_date": birth.isoformat(),
            "monthly_income": "100.00", "labor_capacity": "none"}]},
        "documents": DIBAO_DOCS if documents is None else documents,
    }
    if channel == "hotline_12345":
        body["channel_ref"] = f"WO-{seq:06d}"
    if channel == "active_discovery":
        body["discovery"] = {"found_by_name": "王五", "found_by_role": "grid_worker",
                             "found_at": "2026-11-20T09:00:00+08:00", "place": "某村三组"}
    if program == "linshi":
        body["hardship"] = {"kind": "emergency", "months": 2}
        body["documents"] = ["id_card", "hardship_statement"] if documents is None else documents
    body.update(extra)
    return body


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Runs the app's lifespan (migrations, bus, relay, consumers) and yields a client."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Polls until ``check`` returns a truthy value; fails with its last result otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
