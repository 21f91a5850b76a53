"""A use case's writes sent together: on PostgreSQL one statement, on SQLite one by one.

A request-sized use case (a decision, say) ends with a handful of independent writes: its own
row, an update of the row it locked, its outbox event, its audit entry. Sent one by one, each
costs a round trip and SQLAlchemy's per-statement work (≈ 200 µs of CPU), and a busy service
spends more on that than on its rules. PostgreSQL takes them all in one statement of
data-modifying CTEs (``WITH w0 AS (INSERT …), w1 AS (UPDATE …) INSERT …``): one round trip,
still inside the use case's transaction. The statement is built once per *shape* (which tables,
which columns, which of them NULL) and afterwards only bound, so SQLAlchemy's compiled cache and
asyncpg's prepared statements both hit.

All writes of one statement see the same snapshot, so none may depend on another's effect:
use it for writes to different rows (every caller writes rows it created or had locked).
SQLite has no DML in WITH; there the same writes run one after another, in the order given.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# Built statements by shape: which tables (the Table objects: two metadata may name a table
# alike), which columns, which of them NULL. A shape's statement is bound, never rebuilt; a
# service has a handful of shapes.
_STATEMENTS: dict[Any, sa.Executable] = {}


def _value(table: sa.Table, column: str, name: str, value: Any) -> Any:
    # None is written as SQL NULL: a bound None would become JSON 'null' in a JSON column.
    return sa.null() if value is None else sa.bindparam(name, type_=table.c[column].type)


class Writes:
    """``writes.insert(table, row)`` / ``writes.update(table, key, values)``, then
    ``await writes.execute(session)`` (the unit of work does it before commit)."""

    def __init__(self) -> None:
        self._ops: list[tuple[str, sa.Table, dict[str, Any], dict[str, Any]]] = []

    def __bool__(self) -> bool:
        return bool(self._ops)

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        self._ops.append(("insert", table, row, {}))

    def update(self, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """UPDATE ``table`` SET ``values`` WHERE every ``key`` column equals its value."""
        self._ops.append(("update", table, values, key))

    async def execute(self, session: AsyncSession) -> None:
        ops, self._ops = self._ops, []
        if not ops:
            return
        shapes = [(kind, table, tuple(values), tuple(c for c, v in values.items() if v is None), tuple(key))
                  for kind, table, values, key in ops]
        params: list[dict[str, Any]] = []
        for i, (_, _, values, key) in enumerate(ops):
            params.append({f"w{i}_{c}": v for c, v in values.items() if v is not None}
                          | {f"w{i}_k_{c}": v for c, v in key.items()})
        dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
        if dialect != "postgresql" or len(ops) == 1:
            for i, (op, shape) in enumerate(zip(ops, shapes)):
                stmt = _cached((i, shape), lambda: _parametrised(i, *op))
                await session.execute(stmt, params[i])
            return
        stmt = _cached(tuple(shapes), lambda: _combined(ops))
        await session.execute(stmt, {k: v for p in params for k, v in p.items()})


def _cached(shape: Any, build: Any) -> sa.Executable:
    stmt = _STATEMENTS.get(shape)
    if stmt is None:
        stmt = _STATEMENTS[shape] = build()
    return stmt


def _parametrised(i: int, kind: str, table: sa.Table, values: dict[str, Any], key: dict[str, Any]) -> Any:
    bound = {c: _value(table, c, f"w{i}_{c}", v) for c, v in values.items()}
    if kind == "insert":
        return table.insert().values(bound)
    where = [table.c[c] == sa.bindparam(f"w{i}_k_{c}", type_=table.c[c].type) for c in key]
    return sa.update(table).where(*where).values(bound)


def _combined(ops: list[tuple[str, sa.Table, dict[str, Any], dict[str, Any]]]) -> sa.Executable:
    statements = [_parametrised(i, *op) for i, op in enumerate(ops)]
    ctes = [s.cte(f"w{i}") for i, s in enumerate(statements[:-1])]
    # add_cte renders each CTE even though nothing selects from it: PostgreSQL runs every
    # data-modifying CTE of a statement exactly once.
    return statements[-1].add_cte(*ctes)
