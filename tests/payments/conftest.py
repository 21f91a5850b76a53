"""Fixtures for the payments tests. ``database_url`` is the kernel's (every DB test on SQLite and
on PostgreSQL), made cheaper: the PostgreSQL database is created and migrated once per session
and emptied before each test, and SQLite databases are copies of one migrated file."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import PG_ADMIN_DSN, PgDatabases, _unavailable, pg_available


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from services.payments.app import SERVICE_DIR
    from shared.migrations import upgrade_head
    path = tmp_path_factory.mktemp("payments-template") / "template.db"
    upgrade_head(SERVICE_DIR, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(_migrated_sqlite: Path, tmp_path: Path) -> str:
    target = tmp_path / "payments.db"
    shutil.copyfile(_migrated_sqlite, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture(scope="session")
def _shared_pg() -> Iterator[str]:
    if not pg_available():
        _unavailable(f"PostgreSQL at {PG_ADMIN_DSN}")
    dbs = PgDatabases()
    url = dbs.new("payments")
    from services.payments.app import SERVICE_DIR
    from shared.migrations import upgrade_head
    upgrade_head(SERVICE_DIR, url)
    yield url
    dbs.drop_all()


def _emptied(url: str) -> str:
    async def truncate() -> None:
        import asyncpg
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            tables = [r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
            if tables:
                await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each DB test runs on SQLite and on PostgreSQL (migrated, empty)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return _emptied(request.getfixturevalue("_shared_pg"))


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """The session's PostgreSQL database, migrated and empty."""
    return _emptied(request.getfixturevalue("_shared_pg"))


@pytest.fixture
def fresh_pg_url(pg_databases: PgDatabases) -> str:
    """A brand-new PostgreSQL database (for tests that build their own tables)."""
    return pg_databases.new("ledger")
