"""The audit trail is hash-chained: an edited or deleted row is named by the verifier (§7)."""
from __future__ import annotations

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
