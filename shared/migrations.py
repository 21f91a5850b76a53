"""Alembic per service: one helper for every service's env.py, and upgrade-at-start."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Callable

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

# Replicas starting together must not run the same migration twice.
_PG_MIGRATION_LOCK = 0x6D696772617465


def alembic_config(service_dir: Path, database_url: str | None = None) -> Config:
    cfg = Config(str(service_dir / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_dir / "migrations"))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


# alembic keeps its migration context in module globals: one upgrade at a time per process.
_ALEMBIC_LOCK = threading.Lock()


def upgrade_head(service_dir: Path, database_url: str) -> None:
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(service_dir, database_url), "head")


async def upgrade_head_async(service_dir: Path, database_url: str) -> None:
    # env.py runs its own event loop (asyncio.run); give it a thread of its own.
    await asyncio.to_thread(upgrade_head, service_dir, database_url)


def run_env(target_metadata: list[sa.MetaData], default_url: Callable[[], str]) -> None:
    """Body of every service's migrations/env.py."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url") or default_url()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def _run(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()

    async def _online() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(_run)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(_online())
