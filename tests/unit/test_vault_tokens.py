"""PersonVault.reveal with sealed numbers read alongside the rows (the decision's lock carries them):
those keys are opened in memory, only the others are looked up, and a token that belongs to
another person's key does not open."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from shared.pii import PersonVault, vault_table
from shared.settings import DEV_DATA_KEY
from tests.support import make_id

A, B, C = (make_id(date(1950, 3, 1), i) for i in (1, 2, 3))


async def _vault(tmp_path: Path):
    metadata = sa.MetaData()
    vault = PersonVault(DEV_DATA_KEY, vault_table(metadata))
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/v.db")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return vault, engine


async def test_prefetched_tokens_are_opened_and_only_the_rest_is_looked_up(tmp_path: Path) -> None:
    vault, engine = await _vault(tmp_path)
    statements: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    try:
        async with AsyncSession(engine) as conn, conn.begin():
            await vault.keep(conn, [A, B])
            a, b, c = vault.key(A), vault.key(B), vault.key(C)
            tokens = {a: vault.seal(A)["person_enc"]}
            statements.clear()
            assert await vault.reveal(conn, [a, b, c], tokens) == {a: A, b: B}  # C was never kept
            assert len(statements) == 1  # the look-up of b and c only
            statements.clear()
            assert await vault.reveal(conn, [a], tokens) == {a: A}
            assert statements == []  # everything prefetched: no round trip
            with pytest.raises(InvalidTag):  # a token moved to another person's key
                await vault.reveal(conn, [b], {b: tokens[a]})
    finally:
        await engine.dispose()
