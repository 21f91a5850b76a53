"""Re-evaluation of current benefits when the rules or the facts change (D1–D5, T1–T2).

Triggers
    * a policy publication (``POST /v1/policies``) creates a job for the version's region, run
      in the background (``GET /v1/reevaluations/{id}`` shows progress and counts) as of the
      version's effective date — at once when that date has come (changes apply from today),
      on that day when it lies ahead (the job waits ``pending`` until then);
    * a partner fact recorded on a decided case re-evaluates that one case at once, in the
      transaction that stores the fact (``reevaluate_case``).

How a job runs (PERFORMANCE.md: < 60 s and < 1 GiB for a million cases)
    * streams ``benefits`` (status active/exiting) in the region by keyset pagination over the
      index ``(region_code, case_id)``: batches of ``REEVALUATION_BATCH_SIZE``, each read
      ``FOR UPDATE``, computed and written in **one transaction** together with the job's
      progress and cursor — a crash resumes after the last committed batch, without
      duplicates; at most ``REEVALUATION_LANES`` batches are ever in memory;
    * on PostgreSQL two lanes (connections) keep batches in flight: the engine runs in a worker
      thread, so one batch's computation overlaps the other's COPY/UPDATE inside PostgreSQL;
      commits stay in batch order (the stored cursor means "everything before it is done");
    * resolves the policy once per region (interned by the versions it uses) with the
      publication sequence fixed at the job's start, so a resumed job sees the same rules;
    * unchanged cases write nothing and publish nothing; a changed case writes a decision row
      (kind ``reevaluation``: inputs by reference to the household's decision, full trace,
      policy version, as-of date and the publication sequence that fixes every parameter's
      source — replay resolves them again from it), an ``eligibility.benefit.changed`` outbox row and the new
      benefit state. On PostgreSQL with COPY (decisions, outbox) and one ``UPDATE … FROM
      unnest(…)`` per batch; on SQLite with executemany;
    * a benefit set by an officer's override is never changed automatically: it is flagged
      ``review_needed`` and counted (the officer's reason may be something the rules miss);
    * jobs run one at a time (PostgreSQL advisory lock when claiming), oldest first; waiting
      proposals in the region are recomputed at the end of a policy job.
"""
from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, region_covers
from shared.errors import NotFound
from shared.events.eligibility import BenefitChanged
from shared.logging import get_logger
from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceRuntime

from services.eligibility import audit
from services.eligibility.domain.changes import classify, exit_until, fen, reason_text, rule_codes, yuan
from services.eligibility.domain.inputs import FastRequest, fast_household, household_from_json, request_json
from services.eligibility.domain.means_test import Fact, apply_facts
from services.eligibility.domain.policy import ResolvedPolicy
from services.eligibility.domain.rules import Assessment, assess
from services.eligibility.models import benefit_households, benefits, cases, decisions, reevaluations
from services.eligibility.policies import PolicyService, region_range, today
from services.eligibility.settings import Settings

log = get_logger("eligibility.reevaluation")

_PG_JOB_LOCK = 0x656C6967726576  # "eligrev"
BENEFIT_TOPIC = "eligibility.benefit"
BENEFIT_TYPE = BenefitChanged.TYPE
assert BenefitChanged.VERSION == 1
JOB_STALE = timedelta(minutes=5)

DEC_COLS = ("id", "kind", "case_id", "reevaluation_id", "action", "outcome", "change", "monthly_fen", "one_time_fen",
            "old_monthly_fen", "approval_level", "exit_months", "exit_until", "covered", "as_of", "effective_from",
            "policy_version", "policy_sources", "policy_seq", "inputs", "assessment", "overridden", "reason",
            "transfer_department", "staged_payments", "pay_first", "decided_at", "decided_by_sub",
            "decided_by_name", "decided_by_role")
OUT_COLS = ("event_id", "topic", "key", "type", "payload", "created_at", "attempts")
FETCH_COLS = ("b.case_id, b.region_code, b.program, b.area, b.status, b.outcome, b.monthly_fen, b.exit_until, "
              "CAST(h.household AS TEXT), h.household_ref, b.overridden, b.applicant_person_id, "
              "CAST(b.covered AS TEXT), h.numbers_enc")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------- the computation

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def trace_json(a: Assessment) -> str:
    """The Assessment dict (API.md shape, the full trace) as JSON text."""
    return orjson.dumps(a.to_dict()).decode()


def uuid7s(n: int) -> list[str]:
    """``n`` time-ordered UUIDv7 strings (RFC 9562: 48-bit Unix ms, version, 74 random bits) from
    one ``os.urandom`` call: index inserts of a million new rows land at the right edge."""
    ms = f"{int(time.time() * 1000):012x}"
    head = f"{ms[:8]}-{ms[8:12]}-7"
    raw = os.urandom(10 * n).hex()
    v = _VARIANT
    return [f"{head}{raw[i:i + 3]}-{v[raw[i + 3]]}{raw[i + 4:i + 7]}-{raw[i + 7:i + 19]}" for i in range(0, 20 * n, 20)]


@dataclass(slots=True)
class Evaluated:
    change: str | None
    assessment: Assessment
    new_fen: int
    status: str
    until: date | None
    covered: list[str]


def evaluate(program: str, area: str, status: str, outcome: str, old_fen: int, old_until: date | None,
             household: Any, policy: ResolvedPolicy, as_of: date) -> Evaluated:
    """One benefit against a policy: the fresh assessment and what changed (domain.changes).

    A 低保 household paid under the household test (``approved``) or already in its exit
    period is assessed with its current amount (D5 gradual exit); a D4 single-person cover is
    not a household benefit, so it is assessed afresh (single person again, approved, or
    stopped)."""
    current = (Decimal(old_fen).scaleb(-2)
               if program == "dibao" and (outcome == "approved" or status == "exiting") else None)
    a = assess(FastRequest(program, area, as_of, household, current), policy)  # type: ignore[arg-type]
    new_outcome = a.outcome
    new_fen = 0 if new_outcome == "denied" else fen(a.monthly_amount)  # type: ignore[arg-type]
    change = classify(status, old_fen, new_outcome, new_fen, as_of=as_of, old_exit_until=old_until)
    if change == "stop":
        return Evaluated(change, a, 0, "stopped", None, [])
    if change == "gradual_exit":
        return Evaluated(change, a, new_fen, "exiting", exit_until(as_of, a.exit_months or 0), a.covered_members)
    return Evaluated(change, a, new_fen, "active", None, a.covered_members)


@dataclass
class Context:
    job_id: str | None
    action: str                     # policy | fact
    trigger_text: str
    as_of: date
    policy_seq: int
    resolver: Callable[[str], ResolvedPolicy | None]
    now: datetime
    correlation_id: str | None
    actor: audit.Actor
    # (case id, benefit_households.numbers_enc) → {person key: number}: the events carry numbers
    open_numbers: Callable[[str, str], Mapping[str, str]]


@dataclass
class BatchOut:
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("processed", "changed", "raised", "lowered", "gradual_exit", "stopped", "unchanged", "needs_review",
         "no_policy"), 0))
    last_key: tuple[str, str] | None = None
    compute_s: float = 0.0


_COUNTER = {"raise": "raised", "lower": "lowered", "gradual_exit": "gradual_exit", "stop": "stopped"}


def compute_batch(rows: list[Any], ctx: Context, policies: dict[str, ResolvedPolicy | None] | None = None) -> BatchOut:
    """Rows as fetched (FETCH_COLS order) → decision, outbox and benefit-update tuples.

    Pure CPU, safe to run in a worker thread: ``policies`` (region → policy) is resolved by
    the caller beforehand (``ctx.resolver`` is used only for regions missing from it). The
    cyclic GC is paused meanwhile (nothing here makes cycles; refcounting frees it all)."""
    t0 = time.perf_counter()
    enabled = gc.isenabled()
    gc.disable()
    try:
        out = _compute(rows, ctx, dict(policies or {}))
    finally:
        if enabled:
            gc.enable()
    out.compute_s = time.perf_counter() - t0
    return out


def _compute(rows: list[Any], ctx: Context, policies: dict[str, Any]) -> BatchOut:
    out = BatchOut()
    counts = out.counts
    loads, dumps = orjson.loads, orjson.dumps
    as_of, now = ctx.as_of, ctx.now
    as_of_s, now_s = as_of.isoformat(), now.isoformat()
    job, action, seq, cid = ctx.job_id, ctx.action, ctx.policy_seq, ctx.correlation_id
    actor_sub, actor_name, actor_role = ctx.actor.sub, ctx.actor.name, ctx.actor.role
    trigger = ctx.trigger_text
    resolver = ctx.resolver
    open_numbers = ctx.open_numbers
    changed: list[tuple[Any, ...]] = []
    for row in rows:
        (case_id, region, program, area, status, outcome, old_fen, old_until, hh_text, hh_ref, overridden,
         applicant, covered_text, _numbers) = row
        policy = policies.get(region, False)
        if policy is False:
            policy = policies[region] = resolver(region)
        if policy is None:
            counts["no_policy"] += 1
            continue
        ev = evaluate(program, area, status, outcome, old_fen, old_until, fast_household(loads(hh_text)), policy,
                      as_of)
        if ev.change is None:
            counts["unchanged"] += 1
            continue
        if overridden:
            counts["needs_review"] += 1
            out.reviews.append(case_id)
            continue
        changed.append((row, ev, policy.version_id))
    counts["processed"] = len(rows)
    ids = uuid7s(2 * len(changed))
    dec_append, out_append, upd_append = out.decisions.append, out.outbox.append, out.updates.append
    for k, ((case_id, region, program, area, status, outcome, old_fen, old_until, hh_text, hh_ref, overridden,
             applicant, covered_text, numbers_enc), ev, version) in enumerate(changed):
        change = ev.change
        counts[_COUNTER[change]] += 1  # type: ignore[index]
        a = ev.assessment
        codes = rule_codes([b.code for b in a.breakdown] + [r.code for r in a.reasons])
        until = ev.until
        stop = change == "stop"
        reason = reason_text(change, program, old_fen, ev.new_fen, codes, trigger, until)  # type: ignore[arg-type]
        covered = loads(covered_text) if stop else ev.covered
        covered_json = covered_text if stop else dumps(covered).decode()
        decision_id, event_id = ids[2 * k], ids[2 * k + 1]
        until_s = until.isoformat() if until else None
        new_amount = None if stop else yuan(ev.new_fen)
        old_amount = yuan(old_fen)
        inputs = dumps({"program": program, "area": area, "as_of": as_of_s, "region_code": region,
                        "current_benefit": old_amount if program == "dibao" and (outcome == "approved" or
                                                                                 status == "exiting") else None,
                        "hardship": None, "household_ref": hh_ref}).decode()
        dec_append((
            decision_id, "reevaluation", case_id, job, action, a.outcome, change, None if stop else ev.new_fen,
            None, old_fen, a.approval_level, a.exit_months, until, covered_json, as_of, as_of, version, None, seq,
            inputs, trace_json(a), False, reason, None, None, False, now, actor_sub, actor_name, actor_role))
        # rows hold person keys; the event carries the numbers: the household's sealed numbers are
        # read with it and decrypted here, for changed benefits only (one decryption each)
        numbers = open_numbers(case_id, numbers_enc)
        out_append((event_id, BENEFIT_TOPIC, case_id, BENEFIT_TYPE, dumps({
            "id": event_id, "type": BENEFIT_TYPE, "version": 1, "source": "eligibility", "subject": case_id,
            "time": now_s, "correlation_id": cid, "data": {
                "case_id": case_id, "program": program, "region_code": region,
                "applicant_person_id": numbers[applicant], "covered_person_ids": [numbers[p] for p in covered],
                "change": change, "old_monthly_amount": old_amount,
                "new_monthly_amount": new_amount, "effective_from": as_of_s, "exit_until": until_s,
                "policy_version": version, "reason": reason}}), now, 0))
        upd_append((case_id, ev.status, "denied" if stop else a.outcome, old_fen if stop else ev.new_fen, until,
                    decision_id, version, covered_json))
    counts["changed"] = len(changed)
    if rows:
        out.last_key = (rows[-1][1], rows[-1][0])
    return out


# ----------------------------------------------------------------------------- batch I/O


async def _pg_fetch(raw: Any, lo: str, hi: str, cursor: tuple[str, str], limit: int) -> list[Any]:
    return await raw.fetch(
        f"SELECT {FETCH_COLS} FROM benefits b JOIN benefit_households h ON h.case_id = b.case_id "
        "WHERE b.region_code BETWEEN $1 AND $2 AND (b.region_code, b.case_id) > ($3, $4) "
        "AND b.status IN ('active', 'exiting') "
        "ORDER BY b.region_code, b.case_id LIMIT $5 FOR UPDATE OF b", lo, hi, cursor[0], cursor[1], limit)


async def _pg_write(raw: Any, out: BatchOut) -> None:
    if out.decisions:
        await raw.copy_records_to_table("decisions", records=out.decisions, columns=DEC_COLS)
        await raw.copy_records_to_table("outbox", records=out.outbox, columns=OUT_COLS)
        cols = list(zip(*out.updates))
        await raw.execute(
            "UPDATE benefits AS b SET status = u.status, outcome = u.outcome, monthly_fen = u.fen, "
            "exit_until = u.exit_until, decision_id = u.decision_id, policy_version = u.version, "
            "covered = u.covered::json, updated_at = $9 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::date[], $6::text[], $7::text[], "
            "$8::text[]) AS u(case_id, status, outcome, fen, exit_until, decision_id, version, covered) "
            "WHERE b.case_id = u.case_id", *[list(c) for c in cols], utcnow())
    if out.reviews:
        await raw.execute("UPDATE benefits SET review_needed = true WHERE case_id = ANY($1::text[])", out.reviews)


_SQLITE_FETCH = sa.text(
    f"SELECT {FETCH_COLS} FROM benefits b JOIN benefit_households h ON h.case_id = b.case_id "
    "WHERE b.region_code BETWEEN :lo AND :hi AND (b.region_code, b.case_id) > (:r, :c) "
    "AND b.status IN ('active', 'exiting') ORDER BY b.region_code, b.case_id LIMIT :n")
_SQLITE_INSERT_DECISION = sa.text(
    f"INSERT INTO decisions ({', '.join(DEC_COLS)}) VALUES ({', '.join(':' + c for c in DEC_COLS)})")
_SQLITE_UPDATE = sa.text(
    "UPDATE benefits SET status = :status, outcome = :outcome, monthly_fen = :fen, exit_until = :exit_until, "
    "decision_id = :decision_id, policy_version = :version, covered = :covered, updated_at = :now "
    "WHERE case_id = :case_id")


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """SQLite hands dates back as strings in raw SQL; the engine wants dates."""
    r = list(row)
    if isinstance(r[7], str):
        r[7] = date.fromisoformat(r[7])
    r[10] = bool(r[10])
    return tuple(r)


def _sqlite_value(v: Any) -> Any:
    """Dates and instants as SQLAlchemy's SQLite types store them (UTC, no offset)."""
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(v, date):
        return v.isoformat()
    return v


async def _sqlite_write(session: AsyncSession, out: BatchOut) -> None:
    from shared.messaging.tables import outbox  # noqa: PLC0415

    if out.decisions:
        await session.execute(_SQLITE_INSERT_DECISION, [
            {c: _sqlite_value(v) for c, v in zip(DEC_COLS, d)} for d in out.decisions])
        await session.execute(outbox.insert(), [dict(zip(OUT_COLS, o)) for o in out.outbox])
        now = _sqlite_value(utcnow())
        await session.execute(_SQLITE_UPDATE, [
            {"case_id": u[0], "status": u[1], "outcome": u[2], "fen": u[3],
             "exit_until": u[4].isoformat() if u[4] else None, "decision_id": u[5], "version": u[6],
             "covered": u[7], "now": now} for u in out.updates])
    if out.reviews:
        await session.execute(sa.update(benefits).where(benefits.c.case_id.in_(out.reviews)).values(review_needed=True))


# ----------------------------------------------------------------------------- jobs

async def new_job(session: AsyncSession, *, region_code: str, trigger: str, policy_version_id: str | None,
                  as_of: date, actor: audit.Actor, correlation_id: str | None) -> str:
    job_id = str(uuid.uuid4())
    await session.execute(reevaluations.insert().values(
        id=job_id, region_code=region_code, trigger=trigger, policy_version_id=policy_version_id, as_of=as_of,
        status="pending", correlation_id=correlation_id, requested_by_sub=actor.sub, requested_by_name=actor.name,
        created_at=utcnow()))
    return job_id


class ReevaluationService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings, policies: PolicyService,
                 case_service: Any) -> None:
        self.runtime = runtime
        self.settings = settings
        self.policies = policies
        self.cases = case_service

    @property
    def _pg(self) -> bool:
        return self.runtime.engine.dialect.name == "postgresql"

    # -- claiming and running jobs ------------------------------------------------------------
    async def _claim(self) -> Mapping[str, Any] | None:
        now = utcnow()
        async with self.runtime.session_factory() as s:
            async with s.begin():
                if self._pg:
                    await s.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_JOB_LOCK})"))
                else:  # take SQLite's write lock before reading
                    await s.execute(sa.update(reevaluations).where(sa.false()).values(status=reevaluations.c.status))
                busy = await s.scalar(sa.select(reevaluations.c.id).where(
                    reevaluations.c.status == "running", reevaluations.c.heartbeat_at >= now - JOB_STALE).limit(1))
                if busy:
                    return None
                # A version effective in the future is re-evaluated on its day: the benefits
                # always show the rules in force today (GET /v1/reevaluations/{id}: pending).
                job = (await s.execute(sa.select(reevaluations).where(reevaluations.c.as_of <= today(), sa.or_(
                    reevaluations.c.status == "pending",
                    sa.and_(reevaluations.c.status == "running", reevaluations.c.heartbeat_at < now - JOB_STALE)))
                    .order_by(reevaluations.c.created_at).limit(1))).mappings().first()
                if job is None:
                    return None
                await s.execute(sa.update(reevaluations).where(reevaluations.c.id == job["id"]).values(
                    status="running", started_at=job["started_at"] or now, heartbeat_at=now))
                return job

    async def run_once(self) -> int:
        job = await self._claim()
        if job is None:
            return 0
        await self.run_job(job["id"])
        return 1

    async def run_job(self, job_id: str) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            job = (await s.execute(sa.select(reevaluations).where(reevaluations.c.id == job_id))).mappings().one()
        t_start = time.perf_counter()
        try:
            snap = await self.policies.snapshot()
            seq = job["policy_seq"] if job["policy_seq"] is not None else snap.max_seq
            as_of: date = job["as_of"]
            lo, hi = region_range(job["region_code"])
            first: dict[str, Any] = {"policy_seq": seq, "heartbeat_at": utcnow()}
            if job["total"] is None:
                async with self.runtime.session_factory() as s:
                    first["total"] = int(await s.scalar(sa.select(sa.func.count()).select_from(benefits).where(
                        benefits.c.region_code.between(lo, hi), benefits.c.status.in_(("active", "exiting")))) or 0)
            await self._update_job(job_id, first)
            vid = job["policy_version_id"]
            version = snap.by_id.get(vid) if vid else None
            trigger = (f"政策调整（{vid}，{version.region_code} 自 {version.effective_from.isoformat()} 起施行）"
                       if version else f"重新核定（{job['trigger']}）")
            ctx = Context(job_id=job_id, action="policy", trigger_text=trigger, as_of=as_of, policy_seq=seq,
                          resolver=lambda region: self.policies.resolve_in(snap, region, as_of, max_seq=seq)[1],
                          now=utcnow(), correlation_id=job["correlation_id"],
                          actor=audit.Actor(f"system:reevaluation/{job_id}", "re-evaluation job", "system"),
                          open_numbers=self.cases.persons.open_numbers)
            cursor = (job["cursor_region"] or lo, job["cursor_case"] or "")
            if self._pg:
                await self._pg_lanes(ctx, lo, hi, cursor)
            else:
                while True:
                    ctx.now = utcnow()
                    n, cursor = await self._sqlite_batch(ctx, lo, hi, cursor)
                    if n == 0:
                        break
                    self.runtime.relay.wake()
                    await asyncio.sleep(0)  # let the HTTP side breathe between batches
            refreshed = await self._refresh_proposals(lo, hi)
            await self._update_job(job_id, {"status": "done", "finished_at": utcnow(), "proposals_refreshed": refreshed})
            async with self.runtime.uow() as tx:
                done = (await tx.session.execute(sa.select(reevaluations).where(reevaluations.c.id == job_id))).mappings().one()
                await audit.append(tx.session, ctx.actor, "reevaluation.done", "reevaluation", job_id,
                                   {k: done[k] for k in ("region_code", "policy_version_id", "processed", "changed",
                                                         "raised", "lowered", "gradual_exit", "stopped",
                                                         "needs_review", "no_policy")})
            log.info("reevaluation_done", job=job_id, seconds=round(time.perf_counter() - t_start, 2),
                     processed=done["processed"], changed=done["changed"])
        except Exception as exc:
            log.error("reevaluation_failed", job=job_id, error=f"{type(exc).__name__}: {exc}"[:500])
            await self._update_job(job_id, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                                            "finished_at": utcnow()})
            raise
        async with self.runtime.session_factory() as s:
            return dict((await s.execute(sa.select(reevaluations).where(reevaluations.c.id == job_id))).mappings().one())

    async def _update_job(self, job_id: str, values: dict[str, Any]) -> None:
        async with self.runtime.session_factory() as s:
            async with s.begin():
                await s.execute(sa.update(reevaluations).where(reevaluations.c.id == job_id).values(**values))

    async def _pg_lanes(self, ctx: Context, lo: str, hi: str, cursor: tuple[str, str]) -> None:
        """PostgreSQL: ``REEVALUATION_LANES`` lanes, each on its own connection, take consecutive
        batches (the read and the shared cursor are serialised). The engine runs in one worker
        thread, so one lane's computation overlaps the other lanes' COPY/UPDATE work inside
        PostgreSQL. Each batch is one transaction; commits happen strictly in batch order (a
        lane waits for its turn before writing the job's progress and cursor), so the stored
        cursor always means "everything before it is done" and a resumed job repeats nothing."""
        limit = self.settings.reevaluation_batch_size
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {"cursor": cursor, "done": False, "next": 0, "turn": 0}
        read_lock = asyncio.Lock()
        turn = asyncio.Condition()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reevaluation-engine")

        async def lane() -> None:
            async with self.runtime.engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                while True:
                    async with raw.transaction():
                        async with read_lock:
                            if state["done"]:
                                return
                            t0 = time.perf_counter()
                            rows = await _pg_fetch(raw, lo, hi, state["cursor"], limit)
                            t_read = time.perf_counter() - t0
                            if not rows:
                                state["done"] = True
                                return
                            number = state["next"]
                            state["next"] += 1
                            state["cursor"] = (rows[-1][1], rows[-1][0])
                        regions = {r[1] for r in rows}
                        policies = {region: ctx.resolver(region) for region in regions}
                        ctx.now = utcnow()
                        out = await loop.run_in_executor(executor, compute_batch, rows, ctx, policies)
                        t1 = time.perf_counter()
                        await _pg_write(raw, out)
                        async with turn:
                            await turn.wait_for(lambda: state["turn"] == number)
                        t_write = time.perf_counter() - t1
                        await _pg_progress(raw, ctx.job_id, out, out.compute_s, t_read + t_write)
                    async with turn:  # committed: the next batch may commit
                        state["turn"] += 1
                        turn.notify_all()
                    self.runtime.relay.wake()

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, self.settings.reevaluation_lanes)):
                    group.create_task(lane())
        finally:
            executor.shutdown(wait=True)

    async def _sqlite_batch(self, ctx: Context, lo: str, hi: str,
                            cursor: tuple[str, str]) -> tuple[int, tuple[str, str]]:
        """SQLite (embedded run): one batch in one transaction — read, compute, write, progress."""
        limit = self.settings.reevaluation_batch_size
        t0 = time.perf_counter()
        async with self.runtime.session_factory() as session:
            async with session.begin():
                await session.execute(sa.update(reevaluations).where(reevaluations.c.id == ctx.job_id)
                                      .values(heartbeat_at=utcnow()))  # the write lock first
                rows = [_sqlite_row(tuple(r)) for r in (await session.execute(_SQLITE_FETCH, {
                    "lo": lo, "hi": hi, "r": cursor[0], "c": cursor[1], "n": limit})).all()]
                if not rows:
                    return 0, cursor
                out = compute_batch(rows, ctx, {region: ctx.resolver(region) for region in {r[1] for r in rows}})
                await _sqlite_write(session, out)
                c = reevaluations.c
                values: dict[str, Any] = {name: getattr(c, name) + out.counts[name] for name in out.counts}
                values.update(cursor_region=out.last_key[0], cursor_case=out.last_key[1],  # type: ignore[index]
                              engine_ms=c.engine_ms + int(out.compute_s * 1000),
                              db_ms=c.db_ms + int((time.perf_counter() - t0 - out.compute_s) * 1000),
                              heartbeat_at=utcnow())
                await session.execute(sa.update(reevaluations).where(reevaluations.c.id == ctx.job_id).values(**values))
        return len(rows), out.last_key  # type: ignore[return-value]

    async def _refresh_proposals(self, lo: str, hi: str) -> int:
        async with self.runtime.session_factory() as s:
            ids = (await s.execute(sa.select(cases.c.id).where(
                cases.c.status.in_(("proposed", "awaiting_policy")),
                sa.or_(cases.c.region_code.between(lo, hi), cases.c.handling_region_code.between(lo, hi))))).scalars().all()
        changed = 0
        for case_id in ids:
            if await self.cases.refresh_proposal(case_id):
                changed += 1
        return changed

    async def get(self, job_id: str, principal: Principal) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            job = (await s.execute(sa.select(reevaluations).where(reevaluations.c.id == job_id))).mappings().first()
        if job is None or not (region_covers(principal.region, job["region_code"])
                               or region_covers(job["region_code"], principal.region)
                               or job["region_code"] == "000000000000"):
            raise NotFound(f"re-evaluation {job_id} not found")
        total = job["total"]
        return {
            "reevaluation_id": job["id"], "region_code": job["region_code"], "trigger": job["trigger"],
            "policy_version": job["policy_version_id"], "as_of": job["as_of"].isoformat(), "status": job["status"],
            "total": total, "processed": job["processed"],
            "progress": (round(job["processed"] / total, 4) if total else (1.0 if job["status"] == "done" else 0.0)),
            "counts": {k: job[k] for k in ("changed", "raised", "lowered", "gradual_exit", "stopped", "unchanged",
                                           "needs_review", "no_policy", "proposals_refreshed")},
            "engine_seconds": job["engine_ms"] / 1000, "database_seconds": job["db_ms"] / 1000,
            "created_at": job["created_at"].isoformat(),
            "started_at": job["started_at"].isoformat() if job["started_at"] else None,
            "finished_at": job["finished_at"].isoformat() if job["finished_at"] else None,
            "requested_by": {"sub": job["requested_by_sub"], "name": job["requested_by_name"]},
            "error": job["error"],
        }

    # -- one case after a fact changed ---------------------------------------------------------
    async def reevaluate_case(self, tx: UnitOfWork, case_row: Mapping[str, Any], facts: list[Fact], *,
                              trigger: str, actor: audit.Actor) -> dict[str, Any] | None:
        """Inside the transaction that stored the fact: the decided case's benefit against the
        new facts, as of today; publishes ``eligibility.benefit.changed`` when it changed."""
        s = tx.session
        if s.bind is not None and s.bind.dialect.name == "postgresql":
            q = sa.select(benefits).where(benefits.c.case_id == case_row["id"]).with_for_update()
        else:
            q = sa.select(benefits).where(benefits.c.case_id == case_row["id"])
        b = (await s.execute(q)).mappings().first()
        if b is None or b["status"] not in ("active", "exiting"):
            return {"change": None, "note": "no current benefit: the fact is recorded for the file"}
        as_of = today()
        res, policy, snap = await self.policies.resolved(b["region_code"], as_of, session=s)
        if policy is None:
            return {"change": None, "note": f"no complete policy in force: missing {', '.join(res.missing)}"}
        mt = apply_facts(case_row["household"], facts)
        ev = evaluate(b["program"], b["area"], b["status"], b["outcome"], b["monthly_fen"], b["exit_until"],
                      household_from_json(mt.household), policy, as_of)
        now = utcnow()
        decision_id = str(uuid.uuid4())
        a = ev.assessment
        codes = rule_codes([x.code for x in a.breakdown] + [r.code for r in a.reasons])
        from services.eligibility.domain.means_test import SOURCE_LABELS  # noqa: PLC0415
        trigger_text = f"核对信息变化（{SOURCE_LABELS.get(trigger, trigger)}）"
        change = ev.change
        review = change is not None and b["overridden"]
        reason = reason_text(change, b["program"], b["monthly_fen"], ev.new_fen, codes, trigger_text, ev.until) \
            if change else f"{trigger_text}：重新核定后保障金不变（{codes}）"
        with_current = b["program"] == "dibao" and (b["outcome"] == "approved" or b["status"] == "exiting")
        inputs = request_json(program=b["program"], area=b["area"], as_of=as_of, region_code=b["region_code"],
                              household=mt.household,
                              current_benefit=Decimal(b["monthly_fen"]).scaleb(-2) if with_current else None)
        covered = ev.covered if change not in (None, "stop") else list(b["covered"])
        await s.execute(decisions.insert().values(
            id=decision_id, kind="reevaluation", case_id=case_row["id"], reevaluation_id=None, action="fact",
            outcome=a.outcome, change=None if review else change,
            monthly_fen=None if change == "stop" else ev.new_fen, one_time_fen=None, old_monthly_fen=b["monthly_fen"],
            approval_level=a.approval_level, exit_months=a.exit_months, exit_until=ev.until, covered=covered,
            as_of=as_of, effective_from=as_of, policy_version=policy.version_id, policy_sources=dict(res.sources),
            policy_seq=snap.max_seq, inputs=inputs, assessment=a.to_dict(), overridden=False,
            reason=reason if not review else f"{reason}；原金额为人工调整，需复核，未自动变更",
            decided_at=now, decided_by_sub=actor.sub, decided_by_name=actor.name, decided_by_role=actor.role))
        await s.execute(sa.update(benefit_households).where(benefit_households.c.case_id == case_row["id"])
                        .values(household=mt.household, household_ref=decision_id))
        numbers = await self.cases.persons.reveal(s, [b["applicant_person_id"], *covered])  # for the event
        values: dict[str, Any] = {"updated_at": now}
        if review:
            values["review_needed"] = True
        elif change is not None:
            values.update(status=ev.status, outcome=a.outcome if change != "stop" else "denied",
                          monthly_fen=ev.new_fen if change != "stop" else b["monthly_fen"], exit_until=ev.until,
                          decision_id=decision_id, policy_version=policy.version_id, covered=covered)
            tx.emit(BenefitChanged(
                case_id=case_row["id"], program=b["program"], region_code=b["region_code"],
                applicant_person_id=numbers[b["applicant_person_id"]], covered_person_ids=[numbers[p] for p in covered],
                change=change,
                old_monthly_amount=Decimal(b["monthly_fen"]).scaleb(-2),
                new_monthly_amount=None if change == "stop" else Decimal(ev.new_fen).scaleb(-2),
                effective_from=as_of, exit_until=ev.until, policy_version=policy.version_id, reason=reason),
                subject=case_row["id"])
        await s.execute(sa.update(benefits).where(benefits.c.case_id == case_row["id"]).values(**values))
        return {"decision_id": decision_id, "change": None if review else change, "review_needed": review,
                "old_monthly_amount": yuan(b["monthly_fen"]),
                "new_monthly_amount": None if change == "stop" else yuan(ev.new_fen), "reason": reason}


async def _pg_progress(raw: Any, job_id: str | None, out: BatchOut, engine_s: float, db_s: float) -> None:
    names = list(out.counts)
    sets = ", ".join(f"{n} = {n} + ${i + 2}" for i, n in enumerate(names))
    k = len(names) + 2
    await raw.execute(
        f"UPDATE reevaluations SET {sets}, cursor_region = ${k}, cursor_case = ${k + 1}, "
        f"engine_ms = engine_ms + ${k + 2}, db_ms = db_ms + ${k + 3}, heartbeat_at = ${k + 4} WHERE id = $1",
        job_id, *[out.counts[n] for n in names], out.last_key[0], out.last_key[1],  # type: ignore[index]
        int(engine_s * 1000), int(db_s * 1000), utcnow())
