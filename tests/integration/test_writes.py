"""A use case's deferred writes (shared/writes.py): on PostgreSQL one statement, on SQLite one by
one, and on both the same rows — NULL stays SQL NULL in a JSON column, an update touches only
its keyed row, and a failing write leaves nothing of the others."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from shared.db import UTCDateTime, insert_ignore_many, make_engine, make_session_factory
from shared.settings import ServiceSettings
from shared.writes import RowSets, Writes

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


def _row_sets(n: int) -> RowSets:
    """``n`` new things (every other one with NULLs), an update of b and c, a note per thing."""
    rows = RowSets()
    for i in range(n):
        rows.insert(things, {"id": f"n{i:02d}", "doc": None if i % 2 else {"i": i, "s": "四"}, "at": AT,
                             "n": None if i % 2 else i})
        rows.insert(notes, {"thing_id": f"n{i:02d}", "text": f"note {i}"})
    rows.update(things, {"id": "b"}, {"doc": None, "n": 11})
    rows.update(things, {"id": "c"}, {"doc": {"v": 22}, "n": None})
    return rows


@pytest.mark.parametrize("n", [1, 7])
async def test_row_sets_store_any_number_of_rows_in_one_statement(database_url: str, n: int) -> None:
    got_things, got_notes, statements = await _run(database_url, [_row_sets(n), _row_sets(n + 3)])
    by_id = {r[0]: r for r in got_things}
    # the second set re-inserts the first set's ids: a duplicate key fails that whole set
    assert sorted(by_id) == sorted(["b", "c", *(f"n{i:02d}" for i in range(n))])
    for i in range(n):
        doc, text, at, num = by_id[f"n{i:02d}"][1:]
        if i % 2:
            assert (doc, text, num) == (None, None, None)  # SQL NULL in the JSON column, not 'null'
        else:
            assert (doc, num) == ({"i": i, "s": "四"}, i)
        assert at == AT
    assert by_id["b"][1:3] == (None, None) and by_id["b"][4] == 11
    assert by_id["c"][1] == {"v": 22} and by_id["c"][4] is None
    assert got_notes == [(f"n{i:02d}", f"note {i}") for i in range(n)]
    if database_url.startswith("postgresql"):
        # one statement per set, the same text for both sizes (one prepared statement)
        assert len(statements) == 2 and statements[0] == statements[1]
        assert "unnest" in statements[0]


async def test_row_sets_keep_each_tables_rows_in_order(database_url: str) -> None:
    rows = RowSets()
    for i in (3, 1, 2, 0, 4):
        rows.insert(notes, {"thing_id": f"t{i}", "text": str(i)})
    await _run(database_url, [rows])
    engine = make_engine(ServiceSettings(database_url=database_url))
    try:
        async with engine.connect() as conn:
            order = (await conn.execute(sa.select(notes.c.thing_id).order_by(notes.c.id))).scalars().all()
    finally:
        await engine.dispose()
    assert order == ["t3", "t1", "t2", "t0", "t4"]  # the sequence follows the order written


async def test_row_sets_can_leave_out_rows_whose_key_is_taken(database_url: str) -> None:
    rows = RowSets()
    rows.insert(things, {"id": "b", "doc": {"v": 99}, "at": AT, "n": 99}, ignore_conflicts=True)  # b exists
    rows.insert(things, {"id": "e", "doc": None, "at": AT, "n": 5}, ignore_conflicts=True)
    rows.insert(notes, {"thing_id": "e", "text": "kept"})
    got_things, got_notes, _ = await _run(database_url, [rows])
    by_id = {r[0]: r for r in got_things}
    assert by_id["b"][4] == 1 and by_id["b"][1] == {"v": 1}  # the row already there is left as it was
    assert by_id["e"][4] == 5 and by_id["e"][2] is None
    assert got_notes == [("e", "kept")]


@pytest.mark.parametrize("n", [2, 9])
async def test_insert_ignore_many_returns_only_the_rows_it_wrote(database_url: str, n: int) -> None:
    """The inbox's write (shared/db.py insert_ignore_many): taken keys — b exists, and one row is
    given twice — are left out and not returned; on PostgreSQL one statement whatever the count."""
    engine = make_engine(ServiceSettings(database_url=database_url))
    statements: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute",
                    lambda c, cur, stmt, *a: statements.append(stmt) if "INSERT" in stmt else None)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            await conn.execute(things.insert(), [{"id": "b", "doc": {"v": 1}, "at": AT, "n": 1}])
        rows = [{"id": f"k{i}", "doc": None if i % 2 else {"i": i}, "at": AT, "n": i} for i in range(n)]
        rows += [{"id": "b", "doc": None, "at": AT, "n": 99}, {"id": "k0", "doc": None, "at": AT, "n": 98}]
        factory = make_session_factory(engine)
        statements.clear()
        for _ in range(2):  # the second time every key is taken
            async with factory() as s, s.begin():
                fresh = await insert_ignore_many(s, things, rows, returning=things.c.id)
            if _ == 0:
                assert fresh == {f"k{i}" for i in range(n)}
            else:
                assert fresh == set()
        async with engine.connect() as conn:
            got = {r[0]: tuple(r[1:]) for r in (await conn.execute(
                sa.select(things.c.id, sa.cast(things.c.doc, sa.Text), things.c.at, things.c.n))).all()}
        assert got["b"][2] == 1 and got["k0"][2] == 0  # the first of two rows with one key wins
        assert got["k1"][0] is None and got["k0"][0] is not None  # SQL NULL, not JSON 'null'
        assert all(got[f"k{i}"][1] == AT for i in range(n))
        if database_url.startswith("postgresql"):
            assert len(statements) == 2 and statements[0] == statements[1] and "unnest" in statements[0]
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(meta.drop_all)
        await engine.dispose()
