"""Test helpers: valid identity numbers, tokens, application bodies, running apps in-process."""
from __future__ import annotations

import asyncio
import sys
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


async def bounded(body: Awaitable[Any], timeout: float = 120.0) -> Any:
    """Runs a test's body in its own task with a deadline: past it, every task's stack is printed
    and the test fails instead of stalling the suite. Seen in tests/security/test_abuse_limits.py
    under CPU load: about one run in eight of the body, run directly in the test's task with two
    embedded apps, never returned (not reproduced once in its own task). One cause, found later:
    the service loops waited with ``asyncio.wait_for``, which on Python 3.11 drops a cancel that
    arrives with a wake-up, so an app's shutdown could wait forever (shared/aio.py ``woken``)."""
    task = asyncio.ensure_future(body)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        for t in asyncio.all_tasks():
            print(f"=== task {t.get_name()}", file=sys.stderr)
            t.print_stack(file=sys.stderr)
        task.cancel()
        raise AssertionError(f"the test's body did not finish in {timeout} s (stacks above)")
    return task.result()


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


# -- database helpers for the person-key tests (rows straight from a service's tables) ----------

MESSAGING_TABLES = frozenset({"outbox", "inbox", "dead_letters"})


async def dump_tables(app: FastAPI, metadata: Any, *, skip: frozenset[str] = frozenset()) -> str:
    """Every row of every table of the service's ``metadata`` (raw stored values), as one text."""
    import sqlalchemy as sa

    out = []
    async with app.state.runtime.session_factory() as s:
        for t in metadata.sorted_tables:
            if t.name not in skip:
                out.append(repr((await s.execute(sa.select(t))).all()))
    return "".join(out)


def migrate(service_dir: Any, url: str, revision: str, *, down: bool = False) -> None:
    from alembic import command

    from shared.migrations import alembic_config

    cfg = alembic_config(service_dir, url)
    (command.downgrade if down else command.upgrade)(cfg, revision)


def on_db(url: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """``fn(connection)`` in one transaction on a fresh engine (outside any running loop)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    async def go() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                return await fn(conn)
        finally:
            await engine.dispose()
    return asyncio.run(go())


def table_rows(url: str, table: Any) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    async def fn(conn: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in (await conn.execute(sa.select(table))).mappings()]
    return on_db(url, fn)


def run_sql(url: str, *statements: Any) -> None:
    """Execute ``statements`` in one transaction (raw seeding or tampering in migration tests)."""
    async def fn(conn: Any) -> None:
        for st in statements:
            await conn.execute(st)
    on_db(url, fn)


def fetch_sql(url: str, sql: str) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    async def fn(conn: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in (await conn.execute(sa.text(sql))).mappings()]
    return on_db(url, fn)


async def feed(consumer: Any, fetched: list[list[Any]], *, batched: bool) -> None:
    """Hand each fetched batch to ``consumer``: whole (the batch path, which must not fall back to
    one event at a time) or event by event (the per-event path), to compare what each stores."""
    for msgs in fetched:
        if batched:
            async def no_fallback(msg: Any) -> None:
                raise AssertionError("the batch failed and was handled one event at a time")
            consumer.handle = no_fallback  # a batch of several events: handled one at a time only on failure
            await consumer.handle_batch(msgs)
        else:
            for msg in msgs:
                await consumer.handle(msg)
