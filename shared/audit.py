"""Tamper-evident audit trail (专项治理, POLICY §7): every state change appends an entry whose hash
covers the previous entry's hash, so an edited or deleted row breaks the chain where it happened.

    python -m shared.audit verify --database-url postgresql+asyncpg://…/payments
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import BigIntPK, UTCDateTime
from shared.messaging.tables import metadata

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x61756469740A  # serializes appends so the chain has one tail

audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("actor_role", sa.String(40), nullable=False),
    sa.Column("action", sa.String(80), nullable=False),
    sa.Column("entity_type", sa.String(40), nullable=False),
    sa.Column("entity_id", sa.String(80), nullable=False),
    # The region the change belongs to: auditors read only their region's entries.
    sa.Column("region_code", sa.String(12), nullable=True, index=True),
    sa.Column("detail", sa.Text, nullable=False),  # canonical JSON, hashed as stored
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("ix_audit_entity", audit_log.c.entity_type, audit_log.c.entity_id)


def canonical(detail: dict[str, Any]) -> str:
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS, default=str).decode()


def entry_hash(prev_hash: str, *, seq: int, at: datetime, actor: str, actor_role: str, action: str,
               entity_type: str, entity_id: str, detail: str, region_code: str | None = None) -> str:
    at_utc = at.astimezone(timezone.utc).isoformat() if at.tzinfo else at.replace(tzinfo=timezone.utc).isoformat()
    material = "\x1f".join([prev_hash, str(seq), at_utc, actor, actor_role, action, entity_type, entity_id,
                            region_code or "", detail])
    return hashlib.sha256(material.encode()).hexdigest()


async def record(session: AsyncSession, *, actor: str, actor_role: str, action: str, entity_type: str,
                 entity_id: str, detail: dict[str, Any] | None = None, at: datetime | None = None,
                 region_code: str | None = None, actor_region: str | None = None) -> int:
    """Append one entry inside the caller's transaction (the state change and its audit entry
    commit together). Returns its sequence number."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))
    last = (await session.execute(sa.select(audit_log.c.seq, audit_log.c.hash)
                                  .order_by(audit_log.c.seq.desc()).limit(1))).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    at = at or datetime.now(timezone.utc)
    if region_code is None and detail:
        # Most use cases already name the region in the detail; use the most specific one given.
        for key in ("handling_region_code", "region_code", "township_code", "county_code"):
            value = detail.get(key)
            if isinstance(value, str) and len(value) == 12 and value.isdigit():
                region_code = value
                break
    # Otherwise the actor's own region: they could only act inside it.
    region_code = region_code or actor_region
    text = canonical(detail or {})
    digest = entry_hash(prev, seq=seq, at=at, actor=actor, actor_role=actor_role, action=action,
                        entity_type=entity_type, entity_id=str(entity_id), detail=text, region_code=region_code)
    await session.execute(audit_log.insert().values(
        seq=seq, at=at, actor=actor, actor_role=actor_role, action=action, entity_type=entity_type,
        entity_id=str(entity_id), region_code=region_code, detail=text, prev_hash=prev, hash=digest))
    return seq


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_seq": self.first_broken_seq,
                "reason": self.reason}


async def verify(session: AsyncSession, batch: int = 5000) -> ChainReport:
    """Walks the chain in order and names the first entry that was edited, deleted or inserted."""
    prev_hash, expected_seq, checked, after = GENESIS, 1, 0, 0
    while True:
        rows = (await session.execute(sa.select(audit_log).where(audit_log.c.seq > after)
                                      .order_by(audit_log.c.seq).limit(batch))).mappings().all()
        if not rows:
            return ChainReport(True, checked)
        for r in rows:
            if r["seq"] != expected_seq:
                return ChainReport(False, checked, expected_seq, f"entry {expected_seq} is missing (deleted)")
            if r["prev_hash"] != prev_hash:
                return ChainReport(False, checked, r["seq"], "prev_hash does not match the entry before it")
            recomputed = entry_hash(prev_hash, seq=r["seq"], at=r["at"], actor=r["actor"],
                                    actor_role=r["actor_role"], action=r["action"], entity_type=r["entity_type"],
                                    entity_id=r["entity_id"], detail=r["detail"], region_code=r["region_code"])
            if recomputed != r["hash"]:
                return ChainReport(False, checked, r["seq"], "entry content does not match its hash (edited)")
            prev_hash, expected_seq, checked, after = r["hash"], expected_seq + 1, checked + 1, r["seq"]


async def entries(session: AsyncSession, *, within_region: str, entity_type: str | None = None,
                  entity_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Entries of ``within_region`` and the regions inside it. Entries recorded without a region
    are shown only to province-wide (or wider) tokens."""
    from shared.auth import region_level, region_prefix
    q = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    inside = audit_log.c.region_code.startswith(region_prefix(within_region))
    q = q.where(sa.or_(inside, audit_log.c.region_code.is_(None)) if region_level(within_region) == "province" else inside)
    if entity_type:
        q = q.where(audit_log.c.entity_type == entity_type)
    if entity_id:
        q = q.where(audit_log.c.entity_id == entity_id)
    return [dict(r) | {"detail": orjson.loads(r["detail"])} for r in (await session.execute(q)).mappings().all()]


def add_region_column(op: Any) -> None:
    """For service migrations: databases created before audit entries carried a region."""
    bind = op.get_bind()
    columns = {c["name"] for c in sa.inspect(bind).get_columns("audit_log")}
    if "region_code" not in columns:
        with op.batch_alter_table("audit_log") as batch_op:
            batch_op.add_column(sa.Column("region_code", sa.String(12), nullable=True))
            batch_op.create_index("ix_audit_log_region_code", ["region_code"])


def drop_region_column(op: Any) -> None:
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_index("ix_audit_log_region_code")
        batch_op.drop_column("region_code")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a service's audit hash chain")
    sub = parser.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--database-url", required=True)
    ns = parser.parse_args(argv)

    async def _run() -> ChainReport:
        from sqlalchemy.ext.asyncio import create_async_engine
        engine = create_async_engine(ns.database_url)
        try:
            async with AsyncSession(engine) as session:
                return await verify(session)
        finally:
            await engine.dispose()

    report = asyncio.run(_run())
    print(orjson.dumps(report.as_dict()).decode())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
