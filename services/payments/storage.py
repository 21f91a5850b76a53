"""Small database helpers the payments use cases share: row locks on both dialects, region
scopes as index-friendly ranges, the clock."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, region_prefix
from shared.calendar import to_shanghai_date


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def today_shanghai(now: datetime | None = None) -> date:
    return to_shanghai_date(now or utcnow())


def dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "postgresql"


async def lock_rows(session: AsyncSession, table: sa.Table, key: sa.Column[Any],
                    keys: Iterable[Any]) -> list[sa.RowMapping]:
    """Lock rows for the rest of the transaction, in key order (no deadlocks between lockers).

    PostgreSQL: ``SELECT … FOR UPDATE``. SQLite has no row locks but one writer at a time; a
    write as the first statement takes the database write lock now, so what is read next
    cannot change before commit (a plain SELECT would run outside the transaction)."""
    ordered = sorted(set(keys))
    if not ordered:
        return []
    if dialect(session) == "sqlite":
        await session.execute(table.update().where(key.in_(ordered)).values({key.name: key}))
        stmt = sa.select(table).where(key.in_(ordered)).order_by(key)
    else:
        stmt = sa.select(table).where(key.in_(ordered)).order_by(key).with_for_update()
    return list((await session.execute(stmt)).mappings().all())


async def lock_one(session: AsyncSession, table: sa.Table, key: sa.Column[Any], value: Any) -> sa.RowMapping | None:
    rows = await lock_rows(session, table, key, [value])
    return rows[0] if rows else None


async def serialize(session: AsyncSession, lock_id: int) -> None:
    """One holder at a time of ``lock_id`` until the transaction ends (PostgreSQL advisory lock;
    on SQLite the database write lock, taken now)."""
    if dialect(session) == "sqlite":
        await session.execute(sa.text("UPDATE ledger_accounts SET code = code WHERE 1 = 0"))
    else:
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_id)))


def prefix_bounds(region_code: str) -> tuple[str, str | None]:
    """Codes inside ``region_code`` are the strings in [lo, hi): a btree range, no LIKE."""
    prefix = region_prefix(region_code)
    if set(prefix) == {"9"}:
        return prefix, None
    return prefix, str(int(prefix) + 1).zfill(len(prefix))


def in_region(column: sa.ColumnElement[str], region_code: str) -> sa.ColumnElement[bool]:
    lo, hi = prefix_bounds(region_code)
    clause = column >= lo
    return sa.and_(clause, column < hi) if hi is not None else clause


def actor(principal: Principal) -> str:
    return f"{principal.role}:{principal.sub}"


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
