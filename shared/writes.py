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

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
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


class RowSets:
    """Many use cases' rows, written in one statement whatever their number: on PostgreSQL one
    data-modifying CTE per (table, columns) that reads its rows from ``unnest`` of one array per
    column. The statement depends only on which tables and columns are written — not on how many
    rows or which values are NULL — so a group of 3 decisions and one of 30 bind the same
    prepared statement (shared/writes.py's ``Writes`` builds one statement per row pattern: right
    for one use case, a new statement for every group size). Rows of one table keep their order
    (``WITH ORDINALITY``), which is the order of an outbox's or an audit queue's sequence.
    Same rule as ``Writes``: no write may depend on another's effect. SQLite: row by row, each
    table's rows in the order the tables were first written.

    ``insert(table, row)`` and ``update(table, key, values)`` have ``Writes``' signatures, so a
    use case's code can write into either."""

    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}

    def __bool__(self) -> bool:
        return bool(self._groups)

    def insert(self, table: sa.Table, row: dict[str, Any], *, ignore_conflicts: bool = False) -> None:
        """``ignore_conflicts``: a row whose unique key is taken is left out (ON CONFLICT DO NOTHING)."""
        kind = "insert_ignore" if ignore_conflicts else "insert"
        self._groups.setdefault((kind, table, tuple(row), ()), []).append(row)

    def update(self, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        self._groups.setdefault(("update", table, tuple(values), tuple(key)), []).append({**values, **key})

    async def execute(self, session: AsyncSession) -> None:
        groups, self._groups = self._groups, {}
        if not groups:
            return
        dialect = session.bind.dialect if session.bind is not None else None
        if dialect is None or dialect.name != "postgresql":
            # one by one through Writes (SQL NULL for None in JSON columns, cached statements)
            writes = Writes()
            for (kind, table, columns, key), rows in groups.items():
                if kind == "insert_ignore":
                    await writes.execute(session)  # what came before it, in order
                    for r in rows:  # None as SQL NULL, as everywhere here
                        await session.execute(sqlite.insert(table).values(
                            {c: sa.null() if v is None else v for c, v in r.items()}).on_conflict_do_nothing())
                    continue
                for r in rows:
                    if kind == "insert":
                        writes.insert(table, r)
                    else:
                        writes.update(table, {c: r[c] for c in key}, {c: r[c] for c in columns})
            await writes.execute(session)
            return
        shape = tuple(groups)
        built = _UNNEST.get(shape)
        if built is None:
            built = _UNNEST[shape] = _unnest_statement(shape, dialect)
        stmt, encoders = built
        params: dict[str, Any] = {}
        for g, ((_, _, columns, key), rows) in enumerate(groups.items()):
            params |= _bind_arrays(rows, (*key, *columns), encoders[g], f"g{g}")
        await session.execute(stmt, params)


_UNNEST: dict[tuple[Any, ...], tuple[sa.TextClause, list[list[Any]]]] = {}


def _unnest_source(table: sa.Table, names: tuple[str, ...], dialect: Any, prefix: str
                   ) -> tuple[str, dict[str, str], list[Any]]:
    """``unnest`` of one array parameter per column (``:{prefix}_{j}``), the expression each column
    reads from it, and each column's encoder of Python values (None: as they are)."""
    arrays, exprs, enc = [], {}, []
    for j, c in enumerate(names):
        col = table.c[c]
        sql_type = col.type.compile(dialect=dialect)
        if isinstance(col.type, sa.JSON) or sql_type in ("JSON", "JSONB"):
            # JSON travels as text and is cast per element: None stays SQL NULL (not 'null')
            serialize = getattr(dialect, "_json_serializer", None) or json.dumps
            enc.append(lambda v, s=serialize: None if v is None else s(v))
            arrays.append(f"CAST(:{prefix}_{j} AS TEXT[])")
            exprs[c] = f"CAST(u.c{j} AS {sql_type})"
        else:
            process = col.type.bind_processor(dialect) if isinstance(col.type, sa.TypeDecorator) else None
            enc.append(process)
            arrays.append(f"CAST(:{prefix}_{j} AS {sql_type}[])")
            exprs[c] = f"u.c{j}"
    source = f"unnest({', '.join(arrays)}) WITH ORDINALITY AS u({', '.join(f'c{j}' for j in range(len(names)))}, ord)"
    return source, exprs, enc


def _bind_arrays(rows: list[dict[str, Any]], names: tuple[str, ...], encoders: list[Any], prefix: str
                 ) -> dict[str, list[Any]]:
    return {f"{prefix}_{j}": [encode(r[c]) for r in rows] if encode else [r[c] for r in rows]
            for j, (c, encode) in enumerate(zip(names, encoders))}


_IGNORING: dict[tuple[Any, ...], tuple[sa.TextClause, list[Any]]] = {}


async def insert_ignore_returning(session: AsyncSession, table: sa.Table, rows: list[dict[str, Any]],
                                  returning: sa.Column[Any] | None = None) -> list[Any]:
    """PostgreSQL: ``rows`` (all with the same columns) in one ``INSERT … SELECT FROM unnest(…) ON
    CONFLICT DO NOTHING``, whatever their number; the ``returning`` values of the rows inserted.

    A multi-row ``VALUES`` is a new statement for every row count, and SQLAlchemy compiling it
    was a fifth of a consumer's CPU at 200 events/s (its inbox rows); this one is built once per
    (table, columns) and afterwards only bound."""
    if not rows:
        return []
    dialect = session.bind.dialect
    names = tuple(rows[0])
    shape = (table, names, None if returning is None else returning.name)
    built = _IGNORING.get(shape)
    if built is None:
        prep = dialect.identifier_preparer
        source, exprs, encoders = _unnest_source(table, names, dialect, "a")
        tail = "" if returning is None else f" RETURNING {prep.quote(returning.name)}"
        stmt = sa.text(f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(c) for c in names)}) "
                       f"SELECT {', '.join(exprs[c] for c in names)} FROM {source} ORDER BY u.ord "
                       f"ON CONFLICT DO NOTHING{tail}")
        built = _IGNORING[shape] = (stmt, encoders)
    stmt, encoders = built
    result = await session.execute(stmt, _bind_arrays(rows, names, encoders, "a"))
    return [] if returning is None else list(result.scalars())


def _unnest_statement(shape: tuple[Any, ...], dialect: Any) -> tuple[sa.TextClause, list[list[Any]]]:
    ctes: list[str] = []
    encoders: list[list[Any]] = []
    prep = dialect.identifier_preparer
    for g, (kind, table, columns, key) in enumerate(shape):
        names = (*key, *columns)
        source, exprs, enc = _unnest_source(table, names, dialect, f"g{g}")
        encoders.append(enc)
        target = prep.format_table(table)
        if kind in ("insert", "insert_ignore"):
            ignore = " ON CONFLICT DO NOTHING" if kind == "insert_ignore" else ""
            ctes.append(f"g{g} AS (INSERT INTO {target} ({', '.join(prep.quote(c) for c in columns)}) "
                        f"SELECT {', '.join(exprs[c] for c in columns)} FROM {source} ORDER BY u.ord{ignore})")
        else:
            sets = ", ".join(f"{prep.quote(c)} = {exprs[c]}" for c in columns)
            match = " AND ".join(f"t.{prep.quote(c)} = {exprs[c]}" for c in key)
            ctes.append(f"g{g} AS (UPDATE {target} AS t SET {sets} FROM {source} WHERE {match})")
    return sa.text(f"WITH {', '.join(ctes)} SELECT 1"), encoders
