"""The hot path of `POST /v1/applications` on PostgreSQL: group commit, one statement per group.

New applications, their first timeline steps and (when complete) their outbox events are written
by one INSERT with data-modifying CTEs over arrays (``unnest``), run in autocommit on a small
asyncpg pool of its own: one statement is one transaction, so each application's state, timeline
and event still commit together (or not at all). Requests that arrive while earlier writes are in
flight wait for the next statement and go in together (group commit): under load one round trip,
one transaction and one WAL flush serve dozens of applications; a lone request is written at once.

``ON CONFLICT DO NOTHING`` keeps the unique indexes the judge of duplicates (same Idempotency-Key,
same open person+program), also between two rows of one group: the statement answers which
applications it stored, and the others get ``DuplicateApplication``, so their callers replay
exactly as before. A statement that fails for another reason is retried row by row, so one bad
row fails only its own request.

The general SQLAlchemy path (SQLite, every other use case) stays the reference; tests check both
store the same rows.

Why not the kernel's session: a pooled SQLAlchemy checkout pings with three round trips
(BEGIN; ";"; ROLLBACK, pool_pre_ping on asyncpg), then BEGIN, three INSERTs and COMMIT — eight
round trips and their Python overhead for what PostgreSQL can take in one.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

APP_COLUMNS = (
    "id", "channel", "channel_ref", "program", "region_code", "handling_region_code", "area",
    "applicant_person_enc", "applicant_person_index", "open_key", "household_enc", "hardship", "discovery",
    "documents", "missing_documents",
    "status", "case_id", "owner_sub", "owner_role", "submitted_by_sub", "submitted_by_role", "received_at",
    "due_by", "due_by_provisional", "idempotency_key", "request_hash", "updated_at", "accepted_at",
    "step_started_at", "clock_due_by", "clock_provisional", "clock_at_risk_on",
)
_JSON = frozenset({"hardship", "discovery", "documents", "missing_documents"})
STEP_COLUMNS = ("application_id", "step", "at", "actor", "detail")
OUTBOX_COLUMNS = ("event_id", "topic", "key", "type", "payload", "created_at", "attempts")

_TYPES_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, NULL)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
  AND pg_table_is_visible(c.oid)
"""


def group_insert_sql(types: dict[str, dict[str, str]]) -> str:
    """The group statement; ``types`` are the tables' column types as the database has them, so
    each array parameter is cast to exactly its column's type."""
    params = iter(range(1, 1000))

    def arrays(table: str, columns: tuple[str, ...]) -> str:
        return ", ".join(f"${next(params)}::{types[table][c]}[]" for c in columns)

    app_cols, step_cols, out_cols = ", ".join(APP_COLUMNS), ", ".join(STEP_COLUMNS), ", ".join(OUTBOX_COLUMNS)
    return (
        f"WITH app AS (INSERT INTO applications ({app_cols}) "
        f"SELECT * FROM unnest({arrays('applications', APP_COLUMNS)}) "
        f"ON CONFLICT DO NOTHING RETURNING id), "
        f"steps AS (INSERT INTO application_steps ({step_cols}) "
        f"SELECT s.{', s.'.join(STEP_COLUMNS)} FROM unnest({arrays('application_steps', STEP_COLUMNS)}) "
        f"WITH ORDINALITY AS s({step_cols}, ord) WHERE s.application_id IN (SELECT id FROM app) ORDER BY s.ord), "
        f"events AS (INSERT INTO outbox ({out_cols}) "
        f"SELECT o.{', o.'.join(OUTBOX_COLUMNS)} FROM unnest({arrays('outbox', OUTBOX_COLUMNS)}) "
        f"WITH ORDINALITY AS o({out_cols}, ord) WHERE o.key IN (SELECT id FROM app) ORDER BY o.ord) "
        f"SELECT id FROM app")


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class DuplicateApplication(Exception):
    """A unique index refused the row: same Idempotency-Key, or the person+program is open."""


@dataclass(slots=True)
class _Pending:
    app: list[Any]
    steps: list[list[Any]]
    event: list[Any] | None
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


# A dropped pooled connection or a lost race between two groups: the statement is tried again.
# Safe: if a first try did commit, the second hits the unique keys and the callers replay.
_RETRYABLE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, asyncpg.DeadlockDetectedError,
              asyncpg.SerializationError, ConnectionError, OSError)


class PgApplicationWriter:
    def __init__(self, database_url: str, *, pool_size: int = 20, writers: int = 4, max_group: int = 256) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.pool_size = max(pool_size, writers)
        # How many group statements may be in flight at once: enough to keep PostgreSQL busy
        # while Python builds the next group, few enough that groups still form under load.
        self.writers = writers
        self.max_group = max_group
        self.pool: asyncpg.Pool | None = None
        self.sql: str | None = None
        self._queue: deque[_Pending] = deque()
        self._flushers: set[asyncio.Task[None]] = set()
        self.groups_written = 0  # for tests and the benchmark: how many statements served the rows

    async def start(self) -> None:
        if self.pool is None:
            # reset=_keep: the statements here leave no session state behind (autocommit, no
            # SET, LISTEN or advisory locks), so skip the RESET round trip on every release.
            self.pool = await asyncpg.create_pool(self.dsn, min_size=min(self.writers, self.pool_size),
                                                  max_size=self.pool_size, reset=_keep)
            async with self.pool.acquire() as conn:
                types: dict[str, dict[str, str]] = {}
                for table, column, type_ in await conn.fetch(_TYPES_SQL, ["applications", "application_steps", "outbox"]):
                    types.setdefault(table, {})[column] = type_
            self.sql = group_insert_sql(types)

    async def stop(self) -> None:
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def insert(self, row: dict[str, Any], steps: list[dict[str, Any]], event_row: dict[str, Any] | None) -> None:
        """Returns once the application is committed; ``DuplicateApplication`` if a unique key
        refused it."""
        assert self.pool is not None, "PgApplicationWriter.start() was not awaited"
        item = _Pending(app=[orjson.dumps(row[c]).decode() if c in _JSON else row[c] for c in APP_COLUMNS],
                        steps=[[s[c] for c in STEP_COLUMNS] for s in steps],
                        event=None if event_row is None else [event_row[c] for c in OUTBOX_COLUMNS])
        self._queue.append(item)
        if len(self._flushers) < self.writers:
            task = asyncio.get_running_loop().create_task(self._drain())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        await item.done

    async def _drain(self) -> None:
        while self._queue:
            group = [self._queue.popleft() for _ in range(min(self.max_group, len(self._queue)))]
            try:
                await self._write(group)
            except Exception as exc:  # every request of the group gets an answer, whatever happens
                for item in group:
                    if not item.done.done():
                        item.done.set_exception(exc)

    async def _write(self, group: list[_Pending]) -> None:
        try:
            stored = await self._execute(group)
        except (asyncpg.PostgresError, ValueError, TypeError, OverflowError) as exc:
            if len(group) == 1:
                raise exc
            # Something in one row (a value too long, a bad type): each row alone, so the
            # others are stored and only the faulty one's request fails.
            for item in group:
                try:
                    await self._write([item])
                except Exception as one:
                    if not item.done.done():
                        item.done.set_exception(one)
            return
        self.groups_written += 1
        for item in group:
            if item.app[0] in stored:
                item.done.set_result(None)
            else:
                item.done.set_exception(DuplicateApplication("a unique key refused the application"))

    async def _execute(self, group: list[_Pending]) -> set[str]:
        assert self.pool is not None and self.sql is not None
        app_cols: list[list[Any]] = [[] for _ in APP_COLUMNS]
        step_cols: list[list[Any]] = [[] for _ in STEP_COLUMNS]
        out_cols: list[list[Any]] = [[] for _ in OUTBOX_COLUMNS]
        for item in group:
            for col, value in zip(app_cols, item.app):
                col.append(value)
            for step in item.steps:
                for col, value in zip(step_cols, step):
                    col.append(value)
            if item.event is not None:
                for col, value in zip(out_cols, item.event):
                    col.append(value)
        args = [*app_cols, *step_cols, *out_cols]
        for attempt in (1, 2, 3):
            try:
                async with self.pool.acquire() as conn:
                    return {r[0] for r in await conn.fetch(self.sql, *args)}
            except _RETRYABLE:
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")


async def _keep(_: asyncpg.Connection) -> None:
    return None
