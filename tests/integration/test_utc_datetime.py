"""UTCDateTime stores instants, whatever offset they are given in: on SQLite (which keeps the
wall-clock digits and compares text) an Asia/Shanghai day's bounds must select the same rows as
on PostgreSQL. Found by the reconciliation test failing between 16:00 and 24:00 UTC."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import UTCDateTime

SHANGHAI = timezone(timedelta(hours=8))
metadata = sa.MetaData()
events = sa.Table("instants", metadata, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("at", UTCDateTime(), nullable=False))


async def test_instants_compare_as_instants_across_offsets(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            # 22:30 UTC on 1 December is 06:30 on 2 December in Shanghai
            await conn.execute(events.insert(), [
                {"id": 1, "at": datetime(2026, 12, 1, 22, 30, tzinfo=timezone.utc)},
                {"id": 2, "at": datetime(2026, 12, 2, 6, 30, tzinfo=SHANGHAI) + timedelta(days=1)},
                {"id": 3, "at": datetime(2026, 12, 1, 15, 59, tzinfo=timezone.utc)},  # 23:59 on 1 Dec in Shanghai
            ])
            lo = datetime(2026, 12, 2, tzinfo=SHANGHAI)
            hi = datetime(2026, 12, 3, tzinfo=SHANGHAI)
            ids = (await conn.execute(sa.select(events.c.id).where(events.c.at >= lo, events.c.at < hi)
                                      .order_by(events.c.id))).scalars().all()
            assert ids == [1]
            back = (await conn.execute(sa.select(events.c.at).where(events.c.id == 2))).scalar_one()
            assert back == datetime(2026, 12, 2, 22, 30, tzinfo=timezone.utc) and back.utcoffset() == timedelta(0)
    finally:
        await engine.dispose()
