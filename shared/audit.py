"""Tamper-evident audit trail (专项治理, POLICY §7): every state change appends an entry whose hash
covers the previous entry's hash, so an edited or deleted row breaks the chain where it happened.

One chain has one tail, so linking an entry means holding the tail until the transaction
commits. On PostgreSQL a use case does not wait for it: when another transaction holds the tail
the entry is written to ``audit_pending`` in the use case's own transaction (it commits or rolls
back with the state change) and the sealer (``seal``, a background loop of every service, woken
after such a commit) links pending entries into the chain in order of their ids a few
milliseconds later. Uncontended appends (and every append on SQLite, which has one writer
anyway) are linked at once, as before. Verification covers the linked chain and counts what is
still pending; ``GET /v1/audit/verify`` seals first, so it covers every committed entry.

    python -m shared.audit verify --database-url postgresql+asyncpg://…/payments
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import BigIntPK, UTCDateTime
from shared.messaging.tables import metadata
from shared.writes import RowSets, Writes

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x61756469740A  # serializes appends so the chain has one tail

def _entry_columns(*, region_index: bool) -> list[sa.Column[Any]]:
    """What an entry says (who, when, what, why): the same in the chain and while pending."""
    return [
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("actor_role", sa.String(40), nullable=False),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("entity_type", sa.String(40), nullable=False),
        sa.Column("entity_id", sa.String(80), nullable=False),
        # The region the change belongs to: auditors read only their region's entries.
        sa.Column("region_code", sa.String(12), nullable=True, index=region_index),
        sa.Column("detail", sa.Text, nullable=False),  # canonical JSON, hashed as stored
    ]


audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
    *_entry_columns(region_index=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("ix_audit_entity", audit_log.c.entity_type, audit_log.c.entity_id)

# Entries committed with their state change but not linked into the chain yet (see above).
audit_pending = sa.Table(
    "audit_pending", metadata,
    sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
    *_entry_columns(region_index=False),
)

# Called (no arguments) after a transaction that left entries pending has committed: the
# services' sealers register their wake-up here.
pending_listeners: list[Callable[[], None]] = []


def _after_commit(sync_session: Any) -> None:
    if sync_session.info.pop("audit_pending", False):
        for listener in list(pending_listeners):
            try:
                listener()
            except Exception:  # a wake-up is an optimisation; the sealer also polls
                pass


def _after_rollback(sync_session: Any) -> None:
    sync_session.info.pop("audit_pending", None)


def _leave_pending(session: AsyncSession) -> None:
    sync = session.sync_session
    if not sa.event.contains(sync, "after_commit", _after_commit):
        sa.event.listen(sync, "after_commit", _after_commit)
        sa.event.listen(sync, "after_rollback", _after_rollback)
    sync.info["audit_pending"] = True


def canonical(detail: dict[str, Any]) -> str:
    return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS, default=str).decode()


def entry_hash(prev_hash: str, *, seq: int, at: datetime, actor: str, actor_role: str, action: str,
               entity_type: str, entity_id: str, detail: str, region_code: str | None = None) -> str:
    at_utc = at.astimezone(timezone.utc).isoformat() if at.tzinfo else at.replace(tzinfo=timezone.utc).isoformat()
    material = "\x1f".join([prev_hash, str(seq), at_utc, actor, actor_role, action, entity_type, entity_id,
                            region_code or "", detail])
    return hashlib.sha256(material.encode()).hexdigest()


def _entry(*, actor: str, actor_role: str, action: str, entity_type: str, entity_id: str,
           detail: dict[str, Any] | None, at: datetime | None, region_code: str | None,
           actor_region: str | None) -> dict[str, Any]:
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
    return {"at": at, "actor": actor, "actor_role": actor_role, "action": action, "entity_type": entity_type,
            "entity_id": str(entity_id), "region_code": region_code, "detail": canonical(detail or {})}


async def record(session: AsyncSession, *, actor: str, actor_role: str, action: str, entity_type: str,
                 entity_id: str, detail: dict[str, Any] | None = None, at: datetime | None = None,
                 region_code: str | None = None, actor_region: str | None = None,
                 writes: Writes | RowSets | None = None) -> int:
    """Append one entry inside the caller's transaction (the state change and its audit entry
    commit together). Returns its sequence number in the chain, or 0 when the entry was left
    for the sealer to link (another transaction held the chain's tail).

    ``writes``: the caller's deferred writes (shared/writes.py). On PostgreSQL the entry then
    goes pending with them, in the same statement, instead of costing three round trips of its
    own (try the tail, read it, insert): a hot use case saves them and the sealer links its
    entries in batches a few milliseconds after the commit."""
    entry = _entry(actor=actor, actor_role=actor_role, action=action, entity_type=entity_type,
                   entity_id=entity_id, detail=detail, at=at, region_code=region_code, actor_region=actor_region)
    if session.bind.dialect.name == "postgresql":
        if writes is not None:
            writes.insert(audit_pending, entry)
            _leave_pending(session)
            return 0
        # Once this transaction left an entry pending, its later ones follow it (their order stays).
        got = not session.info.get("audit_pending") and await session.scalar(
            sa.select(sa.func.pg_try_advisory_xact_lock(_PG_AUDIT_LOCK)))
        if not got:
            # Waiting here would hold this transaction's row locks and its pooled connection
            # until every earlier appender commits: leave the entry to the sealer instead.
            await session.execute(audit_pending.insert().values(**entry))
            _leave_pending(session)
            return 0
    return (await _link(session, [entry]))[0]


async def _link(session: AsyncSession, entries: list[dict[str, Any]]) -> list[int]:
    """Append ``entries`` at the chain's tail, in order (the caller holds the tail)."""
    if session.bind.dialect.name == "sqlite":
        # The write lock before reading the tail: two writers never read the same tail.
        await session.execute(sa.update(audit_log).where(sa.false()).values(seq=audit_log.c.seq))
    last = (await session.execute(sa.select(audit_log.c.seq, audit_log.c.hash)
                                  .order_by(audit_log.c.seq.desc()).limit(1))).first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    rows = []
    for e in entries:
        seq += 1
        digest = entry_hash(prev, seq=seq, at=e["at"], actor=e["actor"], actor_role=e["actor_role"],
                            action=e["action"], entity_type=e["entity_type"], entity_id=e["entity_id"],
                            detail=e["detail"], region_code=e["region_code"])
        rows.append({**e, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    await session.execute(audit_log.insert(), rows)
    return [r["seq"] for r in rows]


async def seal(session: AsyncSession, limit: int = 1000) -> int:
    """Link up to ``limit`` pending entries into the chain (oldest first) and remove them from
    ``audit_pending``, in one transaction of ``session``. Returns how many were linked."""
    if session.bind.dialect.name == "postgresql":
        # Blocks only for the transaction holding the tail now; appenders meanwhile go pending.
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))
    else:
        # SQLite's write lock before reading what is pending: two sealers never link the same rows.
        await session.execute(sa.update(audit_log).where(sa.false()).values(seq=audit_log.c.seq))
    rows = (await session.execute(sa.select(audit_pending).order_by(audit_pending.c.id).limit(limit))
            ).mappings().all()
    if not rows:
        return 0
    await _link(session, [{k: r[k] for k in ("at", "actor", "actor_role", "action", "entity_type", "entity_id",
                                             "region_code", "detail")} for r in rows])
    await session.execute(sa.delete(audit_pending).where(audit_pending.c.id.in_([r["id"] for r in rows])))
    return len(rows)


async def seal_all(session_factory: Callable[[], AsyncSession]) -> int:
    """Seal until nothing is pending (one transaction per round)."""
    async with session_factory() as s:  # the usual case, nothing pending: one indexed read
        if await s.scalar(sa.select(audit_pending.c.id).limit(1)) is None:
            return 0
    total, limit = 0, 1000
    while True:
        async with session_factory() as s, s.begin():
            n = await seal(s, limit)
        total += n
        if n < limit:  # a short round took everything committed before it
            return total


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    pending: int = 0  # committed entries not linked into the chain yet (see the module docstring)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_broken_seq": self.first_broken_seq,
                "reason": self.reason, "pending": self.pending}


async def verify(session: AsyncSession, batch: int = 5000) -> ChainReport:
    """Walks the chain in order and names the first entry that was edited, deleted or inserted."""
    prev_hash, expected_seq, checked, after = GENESIS, 1, 0, 0
    pending = int(await session.scalar(sa.select(sa.func.count()).select_from(audit_pending)) or 0)
    while True:
        rows = (await session.execute(sa.select(audit_log).where(audit_log.c.seq > after)
                                      .order_by(audit_log.c.seq).limit(batch))).mappings().all()
        if not rows:
            return ChainReport(True, checked, pending=pending)
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


def add_pending_table(op: Any) -> None:
    """For service migrations: databases created before entries could wait for the sealer (a
    database created later got the table from the kernel's metadata in its first revision)."""
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("audit_pending"):
        audit_pending.create(bind=bind)


def drop_pending_table(op: Any) -> None:
    audit_pending.drop(bind=op.get_bind(), checkfirst=True)


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
