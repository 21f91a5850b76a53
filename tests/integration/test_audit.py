"""The audit trail is hash-chained: an edited or deleted row is named by the verifier (§7)."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared import audit
from shared.audit import audit_log
from shared.db import make_session_factory
from shared.messaging.tables import metadata


async def _setup(database_url: str):
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    factory = make_session_factory(engine)
    for i in range(5):
        async with factory() as s, s.begin():
            await audit.record(s, actor=f"u{i}", actor_role="township_office_director", action="signoff.recorded",
                               entity_type="disbursement", entity_id=f"d{i}", detail={"amount": "100.00", "i": i})
    return engine, factory


async def test_intact_chain_verifies(database_url: str) -> None:
    engine, factory = await _setup(database_url)
    async with factory() as s:
        report = await audit.verify(s)
    assert report.ok and report.checked == 5
    await engine.dispose()


async def test_edited_row_is_named(database_url: str) -> None:
    engine, factory = await _setup(database_url)
    async with factory() as s, s.begin():
        await s.execute(audit_log.update().where(audit_log.c.seq == 3).values(detail='{"amount":"900.00","i":2}'))
    async with factory() as s:
        report = await audit.verify(s)
    assert not report.ok and report.first_broken_seq == 3 and "edited" in report.reason
    await engine.dispose()


async def test_deleted_row_is_named(database_url: str) -> None:
    engine, factory = await _setup(database_url)
    async with factory() as s, s.begin():
        await s.execute(sa.delete(audit_log).where(audit_log.c.seq == 2))
    async with factory() as s:
        report = await audit.verify(s)
    assert not report.ok and report.first_broken_seq == 2 and "deleted" in report.reason
    await engine.dispose()


async def test_rewritten_tail_is_detected_by_prev_hash(database_url: str) -> None:
    """Recomputing one row's own hash after editing it still breaks the link to the next row."""
    engine, factory = await _setup(database_url)
    async with factory() as s, s.begin():
        row = (await s.execute(sa.select(audit_log).where(audit_log.c.seq == 4))).mappings().one()
        forged = audit.entry_hash(row["prev_hash"], seq=4, at=row["at"], actor="someone-else",
                                  actor_role=row["actor_role"], action=row["action"], entity_type=row["entity_type"],
                                  entity_id=row["entity_id"], detail=row["detail"])
        await s.execute(audit_log.update().where(audit_log.c.seq == 4).values(actor="someone-else", hash=forged))
    async with factory() as s:
        report = await audit.verify(s)
    assert not report.ok and report.first_broken_seq == 5
    await engine.dispose()


def test_cli_verify_exit_code(tmp_path) -> None:
    import asyncio
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    engine, _ = asyncio.run(_setup(url))
    asyncio.run(engine.dispose())
    assert audit.main(["verify", "--database-url", url]) == 0


# -- contended appends: left pending, linked by the sealer -----------------------------------------

async def test_contended_append_waits_for_the_sealer_not_for_the_lock(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        import pytest
        pytest.skip("SQLite has one writer: every append links at once")
    import asyncio
    engine, factory = await _setup(database_url)
    holder = factory()
    await holder.begin()
    await audit.record(holder, actor="slow", actor_role="township_clerk", action="a.slow", entity_type="case",
                       entity_id="c-slow", detail={})  # holds the chain's tail until it commits
    woken: list[int] = []
    listener = lambda: woken.append(1)  # noqa: E731
    audit.pending_listeners.append(listener)
    try:
        async with factory() as s, s.begin():
            seq = await asyncio.wait_for(audit.record(s, actor="fast", actor_role="township_clerk", action="a.fast",
                                                      entity_type="case", entity_id="c-fast", detail={"x": 1}),
                                         timeout=5)  # does not wait for the holder
            await audit.record(s, actor="fast", actor_role="township_clerk", action="a.fast2",
                               entity_type="case", entity_id="c-fast", detail={"x": 2})
        assert seq == 0 and woken == [1]  # pending, and the sealer is told after the commit
        async with factory() as s, s.begin():  # a rolled-back pending entry leaves nothing
            await audit.record(s, actor="gone", actor_role="township_clerk", action="a.gone", entity_type="case",
                               entity_id="c-gone", detail={})
            await s.rollback()
        assert woken == [1]
        sealing = asyncio.create_task(audit.seal_all(factory))
        await asyncio.sleep(0.3)
        assert not sealing.done()  # the sealer waits for the tail's holder …
        await holder.commit()
        await holder.close()
        assert await sealing == 2  # … then links the pending entries after it, in order
        async with factory() as s:
            report = await audit.verify(s)
            actions = (await s.execute(sa.select(audit_log.c.action).order_by(audit_log.c.seq))).scalars().all()
        assert report.ok and report.checked == 8 and report.pending == 0
        assert actions[5:] == ["a.slow", "a.fast", "a.fast2"]
    finally:
        audit.pending_listeners.remove(listener)
    await engine.dispose()


async def test_concurrent_appends_all_end_up_in_one_valid_chain(database_url: str) -> None:
    import asyncio
    engine, factory = await _setup(database_url)

    async def one(i: int) -> None:
        async with factory() as s, s.begin():
            await audit.record(s, actor=f"c{i}", actor_role="township_clerk", action="case.decision.confirm",
                               entity_type="case", entity_id=f"case-{i}", detail={"i": i})
            await asyncio.sleep(0.01)  # the rest of the use case, holding the transaction open

    await asyncio.gather(*(one(i) for i in range(40)))
    await audit.seal_all(factory)
    async with factory() as s:
        report = await audit.verify(s)
        ids = set((await s.execute(sa.select(audit_log.c.entity_id))).scalars())
    assert report.ok and report.checked == 45 and report.pending == 0
    assert {f"case-{i}" for i in range(40)} <= ids
    await engine.dispose()


async def test_pending_entries_are_counted_then_sealed_and_protected(database_url: str) -> None:
    """What is sealed is protected; the verifier reports how much still waits for the sealer."""
    engine, factory = await _setup(database_url)
    async with factory() as s, s.begin():
        await s.execute(audit.audit_pending.insert().values(
            at=datetime.now(timezone.utc), actor="p", actor_role="township_clerk", action="a.pending",
            entity_type="case", entity_id="c-p", region_code=None, detail="{}"))
    async with factory() as s:
        report = await audit.verify(s)
    assert report.ok and report.checked == 5 and report.pending == 1
    assert await audit.seal_all(factory) == 1
    async with factory() as s, s.begin():
        await s.execute(audit_log.update().where(audit_log.c.seq == 6).values(actor="someone-else"))
    async with factory() as s:
        report = await audit.verify(s)
    assert not report.ok and report.first_broken_seq == 6 and "edited" in report.reason
    await engine.dispose()
