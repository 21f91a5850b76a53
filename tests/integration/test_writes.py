"""A use case's deferred writes (shared/writes.py): on PostgreSQL one statement, on SQLite one by
one, and on both the same rows — NULL stays SQL NULL in a JSON column, an update touches only
its keyed row, and a failing write leaves nothing of the others."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from shared.db import UTCDateTime, make_engine, make_session_factory
from shared.settings import ServiceSettings
from shared.writes import Writes

meta = sa.MetaData()
things = sa.Table("things", meta, sa.Column("id", sa.String(8), primary_key=True),
                  sa.Column("doc", sa.JSON, nullable=True), sa.Column("at", UTCDateTime(), nullable=False),
                  sa.Column("n", sa.Integer, nullable=True))
notes = sa.Table("notes", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("thing_id", sa.String(8), nullable=False), sa.Column("text", sa.Text, nullable=False))

AT = datetime(2026, 12, 2, 8, 30, tzinfo=timezone.utc)


async def _run(url: str, rounds: list[Writes]) -> tuple[list[tuple], list[tuple], list[str]]:
    engine = make_engine(ServiceSettings(database_url=url))
    statements: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(things.insert(), [{"id": "b", "doc": {"v": 1}, "at": AT, "n": 1},
                                                 {"id": "c", "doc": {"v": 2}, "at": AT, "n": 2}])
        factory = make_session_factory(engine)
        statements.clear()
        for writes in rounds:
            async with factory() as s:
                try:
                    async with s.begin():
                        await writes.execute(s)
                except sa.exc.IntegrityError:
                    pass
        async with engine.connect() as conn:
            t = [tuple(r) for r in (await conn.execute(
                sa.select(things.c.id, things.c.doc, sa.cast(things.c.doc, sa.Text), things.c.at, things.c.n)
                .order_by(things.c.id))).all()]
            n = [tuple(r) for r in (await conn.execute(sa.select(notes.c.thing_id, notes.c.text)
                                                       .order_by(notes.c.thing_id))).all()]
        return t, n, [s for s in statements if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SELECT"))]
    finally:
        await engine.dispose()


def _rounds() -> list[Writes]:
    first = Writes()
    first.insert(things, {"id": "a", "doc": None, "at": AT, "n": None})  # SQL NULL, not JSON 'null'
    first.update(things, {"id": "b"}, {"doc": {"v": 10, "s": "二"}, "n": None})
    first.insert(notes, {"thing_id": "a", "text": "made"})
    second = Writes()  # the same shape again: bound into the cached statement
    second.insert(things, {"id": "d", "doc": None, "at": AT, "n": None})
    second.update(things, {"id": "c"}, {"doc": {"v": 20, "s": "三"}, "n": None})
    second.insert(notes, {"thing_id": "d", "text": "made"})
    failing = Writes()  # the duplicate key fails the whole set: the note must not stay
    failing.insert(notes, {"thing_id": "e", "text": "orphan"})
    failing.insert(things, {"id": "a", "doc": {"v": 0}, "at": AT, "n": 0})
    return [first, second, failing]


async def test_writes_store_the_same_rows_on_both_dialects(database_url: str) -> None:
    got_things, got_notes, statements = await _run(database_url, _rounds())
    assert got_things == [("a", None, None, AT, None), ("b", {"v": 10, "s": "二"}, got_things[1][2], AT, None),
                          ("c", {"v": 20, "s": "三"}, got_things[2][2], AT, None), ("d", None, None, AT, None)]
    assert got_notes == [("a", "made"), ("d", "made")]
    if database_url.startswith("postgresql"):
        assert len(statements) == 3  # one statement per set of writes
        assert statements[0] == statements[1] and statements[0].startswith("WITH w0 AS")
    else:
        assert len(statements) == 3 + 3 + 2


def test_writes_are_true_only_with_something_to_send() -> None:
    assert not Writes()
    one = Writes()
    one.insert(notes, {"thing_id": "a", "text": "x"})
    assert one


@pytest.mark.parametrize("kind", ["insert", "update"])
async def test_a_lone_write_is_not_wrapped(database_url: str, kind: str) -> None:
    writes = Writes()
    if kind == "insert":
        writes.insert(things, {"id": "z", "doc": None, "at": AT, "n": 5})
    else:
        writes.update(things, {"id": "b"}, {"n": 7})
    got_things, _, statements = await _run(database_url, [writes])
    assert len(statements) == 1 and not statements[0].startswith("WITH")
    row = dict((r[0], r) for r in got_things)["z" if kind == "insert" else "b"]
    assert row[4] == (5 if kind == "insert" else 7)
