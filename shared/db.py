"""Async engine and session helpers shared by the services (SQLite embedded, PostgreSQL in production)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.settings import ServiceSettings
from shared.writes import insert_ignore_returning

# BIGINT primary keys on PostgreSQL, the rowid alias on SQLite (only INTEGER autoincrements there).
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def json_text(value: Any) -> str:
    """JSON columns' text (SQLAlchemy's ``json_serializer``): orjson, several times faster than
    ``json.dumps`` on the decisions' traces and households a busy service writes and reads on every
    case. Non-string keys are written as strings, as ``json.dumps`` does."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(settings: ServiceSettings, **kw: Any) -> AsyncEngine:
    url = settings.database_url
    kw.setdefault("json_serializer", json_text)
    kw.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kw)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the writer; busy_timeout makes writers queue instead of failing.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # Four services commonly share one PostgreSQL server (max_connections 100 by default).
    kw.setdefault("pool_size", settings.db_pool_size)
    kw.setdefault("max_overflow", settings.db_max_overflow)
    # Not SQLAlchemy's pool_pre_ping: on asyncpg it costs three round trips per checkout (BEGIN;
    # ";"; ROLLBACK), a tenth of a busy service's CPU. A connection the server has closed
    # (pg_terminate_backend, a restart) is seen by asyncpg's protocol as soon as the event loop
    # reads the socket, so asking it is enough; a connection lost between the check and its
    # first statement fails that statement, which every caller survives anyway (mid-transaction
    # losses happen too), and is then discarded by the pool's disconnect handling.
    pre_ping = kw.pop("pool_pre_ping", None)
    engine = create_async_engine(url, pool_pre_ping=bool(pre_ping), **kw)
    if pre_ping is None and url.startswith("postgresql+asyncpg"):
        event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        # the pool discards it and checks out (or opens) another one
        raise sa.exc.DisconnectionError("connection closed by the server")


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def insert_ignore(session: AsyncSession, table: sa.Table, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on either dialect; True when the row was inserted."""
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        stmt = pg_insert(table).values(**values).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount)


async def insert_ignore_many(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]],
                             returning: sa.Column[Any]) -> set[Any]:
    """One multi-row INSERT … ON CONFLICT DO NOTHING; the ``returning`` values of the rows that
    were inserted (a row whose key exists, or is being inserted by a concurrent transaction that
    then commits, is skipped). PostgreSQL: one statement of arrays, built once per (table, columns);
    SQLite: multi-row VALUES in chunks under its parameter limit."""
    if not rows:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    if dialect == "postgresql":
        return set(await insert_ignore_returning(session, table, rows, returning))
    from sqlalchemy.dialects.sqlite import insert as dialect_insert
    inserted: set[Any] = set()
    per_chunk = max(1, 30000 // max(1, len(rows[0])) // 2)
    for i in range(0, len(rows), per_chunk):
        # None as SQL NULL (a bound None would be JSON 'null' in a JSON column)
        chunk = [{c: sa.null() if v is None else v for c, v in r.items()} for r in rows[i:i + per_chunk]]
        stmt = dialect_insert(table).values(chunk).on_conflict_do_nothing().returning(returning)
        inserted.update((await session.execute(stmt)).scalars())
    return inserted


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC instants on both dialects (SQLite hands back naive datetimes)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        # SQLite keeps the wall-clock digits and drops the offset, and compares as text: an
        # Asia/Shanghai instant (a day's bounds) must be turned into UTC before it is bound.
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class InsertIgnoring:
    """``INSERT … ON CONFLICT DO NOTHING`` into ``table`` (any unique key), built once per
    dialect. Consumers' hot paths execute it with a run's rows as parameters (one executemany),
    so SQLAlchemy neither rebuilds the statement nor regenerates its cache key per event, as
    :func:`insert_ignore` does. ``key``: the column :meth:`inserted` hands back."""

    def __init__(self, table: sa.Table, key: sa.Column[Any] | None = None) -> None:
        from sqlalchemy.dialects import postgresql, sqlite
        self._plain = {name: insert(table).on_conflict_do_nothing()
                       for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))}
        self._returning = {name: stmt.returning(key) for name, stmt in self._plain.items()} if key is not None else {}

    @staticmethod
    def _dialect(session: AsyncSession) -> str:
        return session.bind.dialect.name if session.bind is not None else "postgresql"

    async def execute(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows whose key exists (or came earlier in ``rows``) are skipped: the first one wins."""
        if rows:
            await session.execute(self._plain[self._dialect(session)], rows)

    async def inserted(self, session: AsyncSession, rows: list[dict[str, Any]]) -> set[Any]:
        """The keys of the rows inserted now (a row whose key exists, or is being inserted by a
        concurrent transaction that then commits, is skipped)."""
        if not rows:
            return set()
        return set((await session.execute(self._returning[self._dialect(session)], rows)).scalars())


def one_of(column: Any, values: list[Any], *, postgres: bool) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(array)``: one statement text (and one
    prepared statement) for any number of values, where ``IN`` renders one per count."""
    if postgres:
        return column == sa.any_(sa.bindparam(f"{column.name}_any", values, type_=pg_dialect.ARRAY(column.type)))
    return column.in_(values)


def by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by the columns they name (an executemany names the same ones in every row;
    padding with None would store JSON null where a column should stay NULL, or overwrite a
    column an UPDATE should leave alone)."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(frozenset(r), []).append(r)
    return list(groups.values())
