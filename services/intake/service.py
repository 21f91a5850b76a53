"""Intake use cases for applications: one transaction each (state + timeline + outbox).

submit (I1, I3 一次性告知, I2 分办, L1), documents, handoff (I3 首问负责), transfers (I2 转办),
the timeline fed by other services' events (CaseOpened, DecisionMade, DisbursementPaid) with
反馈 to the applicant and the channel, and the lists of overdue / at-risk cases (I3 限时办理).
"""
from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timezone
from typing import Any, Callable

import sqlalchemy as sa
import orjson
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, region_covers, region_prefix
from shared.calendar import WorkingCalendar, WorkingDays, to_shanghai_date
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events.eligibility import CaseOpened, DecisionMade
from shared.events.intake import ApplicationSubmitted, ApplicationTransferred
from shared.events.payments import DisbursementPaid
from shared.events.base import EventData
from shared.logging import correlation_id_var, get_logger
from shared.messaging.envelope import Envelope, topic_of
from shared.messaging.unit_of_work import UnitOfWork, outbox_row
from shared.money import format_yuan
from shared.privacy import present_id
from shared.runtime import ServiceRuntime

from services.intake import channel_feedback as feedback_outbox
from services.intake.channel_feedback import FeedbackSender
from services.intake.domain import feedback as texts
from services.intake.domain.checklist import load_checklist
from services.intake.domain.deadlines import (
    CLOCKED_STATUSES, Clock, TimeLimits, clock_state, load_time_limits, overall_deadline, step_deadline)
from services.intake.domain.routing import dispatch_reason, handling_township, transfer_for_decision
from services.intake.domain.validation import ROLE_CHANNELS, applicant_person_id, application_problems
from services.intake.fastpath import DuplicateApplication, PgApplicationWriter
from services.intake.models import application_steps, applications, transfers
from services.intake.personal_data import ApplicationVault
from services.intake.schemas import ApplicationCreate, ApplicationSummary, HandoffIn, TransferIn
from services.intake.timeline import LOCK_FOR_EVENTS, TimelineWrites

log = get_logger("intake.applications")

OPEN_STATUSES = CLOCKED_STATUSES
_SUBMITTED_TOPIC = topic_of(ApplicationSubmitted.TYPE)
# Who may hand a case off although they do not own it (supervisors in the region).
SUPERVISORS = frozenset({"township_office_director", "township_office_leader", "county_civil_affairs"})
OFFICE_POOL = "office:"  # owner_sub of an e救助 request no clerk has claimed yet


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A random (version 4) UUID as text, without building a uuid.UUID on the hot path."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def raw_body_hash(raw: bytes) -> str:
    """The request as sent, canonical up to key order and whitespace (Idempotency-Key: the
    same key with another body is a conflict)."""
    return canonical_hash(orjson.loads(raw))


def canonical_hash(parsed: Any) -> str:
    """``raw_body_hash`` of a body already parsed."""
    return hashlib.sha256(orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_hash(body: ApplicationCreate) -> str:
    """Canonical: the validated model in its fixed field order (whitespace and key order of the
    request do not matter; every value does)."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def _actor(principal: Principal) -> str:
    return f"{principal.role}:{principal.sub}"


def _channel_line(channel: str, channel_ref: str | None) -> str:
    return f"via {channel}" + (f" ({channel_ref})" if channel_ref else "")


class IntakeService:
    def __init__(self, runtime: ServiceRuntime, calendar: WorkingCalendar,
                 feedback: FeedbackSender | None = None, writer: PgApplicationWriter | None = None) -> None:
        self.runtime = runtime
        # PostgreSQL: the one-statement hot path for new applications (fastpath.py).
        self.writer = writer
        # identity numbers are stored encrypted, looked up by their keyed hash (personal_data.py)
        self.vault = ApplicationVault(runtime.settings.data_encryption_key)
        self.calendar = calendar
        self.checklist = load_checklist()
        self.limits: TimeLimits = load_time_limits()
        self.days = WorkingDays(calendar)
        self._clocks_today: dict[tuple[date, str, str], tuple[Clock, Clock]] = {}
        self.feedback = feedback
        # Tests and the deadline scan set the clock; production uses the wall clock.
        self.clock: Callable[[], datetime] = _now

    # -- submit ---------------------------------------------------------------------------
    async def submit(self, body: ApplicationCreate, principal: Principal, idempotency_key: str | None,
                     digest: str | None = None) -> tuple[int, dict[str, Any]]:
        """(201, the new application); (201, the same application) for a repeated
        Idempotency-Key with the same body; 409 for the key with another body; (200, the
        person's open application) for the same person and program while one is open."""
        now = self.clock()
        problems = application_problems(body, today=to_shanghai_date(now), now=now,
                                         known_documents=self.checklist.labels)
        if problems:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in problems),
                               errors=[{"field": f, "message": m} for f, m in problems])
        if body.channel not in ROLE_CHANNELS.get(principal.role, ()):
            raise Forbidden(f"role {principal.role} cannot file through channel {body.channel}")
        place = body.hardship.place_region_code if body.hardship else None
        # L1: temporary assistance is accepted wherever the hardship happened; staff act in their region.
        if principal.role != "applicant" and not principal.covers(body.region_code) and not (
                body.program == "linshi" and place and principal.covers(place)):
            raise Forbidden(f"region {body.region_code} is outside this token's region {principal.region}")

        key = f"{principal.sub}:{idempotency_key}" if idempotency_key else None
        if key is not None and digest is None:
            digest = request_hash(body)
        person = applicant_person_id(body)
        row, steps = self._new_application(body, principal, now, key, digest, person, place)
        for _ in range(3):
            try:
                await self._insert(row, steps)
                return 201, self._present(row, steps, [], principal)
            except (IntegrityError, DuplicateApplication):
                # Lost to an identical request (same key), or the person already has this
                # program open: answer with that application. The hot path never pays for
                # this look-up; only a conflict does.
                replay = await self._replay(key, digest, row["open_key"], principal)
                if replay is not None:
                    return replay
                # The conflicting application was closed in between: try again.
        raise Conflict("the application could not be stored because of concurrent changes; try again")

    def _new_application(self, body: ApplicationCreate, principal: Principal, now: datetime, key: str | None,
                         digest: str | None, person: str, place: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        app_id = new_id()
        provided = sorted(set(body.documents))
        missing = self.checklist.missing(body.program, body.region_code, provided)
        township = handling_township(body.program, body.region_code, place)
        status = "received" if missing else "accepted"
        overall, clock = self._first_clocks(body.program, status, now)
        if principal.role == "applicant":
            # e救助: nobody at the office has touched it yet; the township office owns it until
            # a clerk claims it with a handoff (首问负责).
            owner_sub, owner_role = f"{OFFICE_POOL}{township}", "township_clerk"
        else:
            owner_sub, owner_role = principal.sub, principal.role
        household = body.household.model_dump(mode="json")
        # The stored columns, plus the applicant's number and the household in the clear for this
        # request's answer and event only: "applicant_person_id" and "household" are no columns.
        row: dict[str, Any] = {
            "id": app_id, "channel": body.channel, "channel_ref": body.channel_ref, "program": body.program,
            "region_code": body.region_code, "handling_region_code": township, "area": body.area,
            **self.vault.seal(app_id, person, household, body.program),
            "applicant_person_id": person, "household": household,
            "hardship": body.hardship.model_dump(mode="json") if body.hardship else None,
            "discovery": body.discovery.model_dump(mode="json") if body.discovery else None,
            "documents": provided, "missing_documents": missing, "status": status, "case_id": None,
            "owner_sub": owner_sub, "owner_role": owner_role,
            "submitted_by_sub": principal.sub, "submitted_by_role": principal.role,
            "received_at": now, "due_by": overall.due, "due_by_provisional": overall.provisional,
            "idempotency_key": key, "request_hash": digest, "updated_at": now,
            "accepted_at": None if missing else now, "step_started_at": now,
            "clock_due_by": clock.due, "clock_provisional": clock.provisional, "clock_at_risk_on": clock.at_risk_on,
        }
        actor = _actor(principal)
        received = _channel_line(body.channel, body.channel_ref)
        if body.discovery is not None:
            d = body.discovery
            received += f"; 主动发现 by {d.found_by_role} {d.found_by_name} at {d.place}, {d.found_at.isoformat()}"
        steps = [("received", received)]
        if missing:
            steps.append(("documents_requested", "一次性告知: " + "、".join(
                d["name"] for d in self.checklist.describe(missing))))
        else:
            steps.append(("accepted", None))
            steps.append(("dispatched", dispatch_reason(body.program, body.region_code, place)))
        return row, [{"application_id": app_id, "step": s, "at": now, "actor": actor, "detail": d}
                     for s, d in steps]

    def _first_clocks(self, program: str, status: str, now: datetime) -> tuple[Clock, Clock]:
        """The acceptance-to-payment clock and the first step's clock of an application
        received today (the same all day long: memoised per day, program and status)."""
        key = (to_shanghai_date(now), program, status)
        hit = self._clocks_today.get(key)
        if hit is None or (hit[0].provisional and self.calendar.has_year(hit[0].due.year)):
            overall = overall_deadline(program, now, self.days, self.limits)
            clock = step_deadline(status, program, now, overall, self.days, self.limits)
            assert clock is not None
            if len(self._clocks_today) > 64:
                self._clocks_today.clear()
            hit = self._clocks_today[key] = (overall, clock)
        return hit

    async def _insert(self, row: dict[str, Any], steps: list[dict[str, Any]]) -> None:
        if self.writer is not None:
            event = self._submitted_row(row) if row["status"] == "accepted" else None
            await self.writer.insert(row, steps, event)
            if event is not None:
                self.runtime.relay.wake()
            return
        async with self.runtime.uow() as tx:
            await tx.session.execute(applications.insert(), row)
            await tx.session.execute(application_steps.insert(), steps)
            if row["status"] == "accepted":
                tx.emit(self._submitted(row), subject=row["id"])

    def _outbox_row(self, event: EventData, subject: str) -> dict[str, Any]:
        """The outbox row UnitOfWork.emit would write, for the one-statement path."""
        env = Envelope(type=event.TYPE, version=event.VERSION, source=self.runtime.name, subject=subject,
                       correlation_id=correlation_id_var.get(), data=event.model_dump(mode="json"))
        return outbox_row(env)

    def _submitted_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The outbox row of ApplicationSubmitted, built without a pydantic round trip: the row's
        values were validated on the way in and are JSON-ready (tests hold it equal to
        ``_outbox_row(_submitted(row))``)."""
        now = self.clock()
        data = {
            "application_id": row["id"], "channel": row["channel"], "channel_ref": row["channel_ref"],
            "program": row["program"], "region_code": row["region_code"],
            "handling_region_code": row["handling_region_code"], "area": row["area"],
            "applicant_person_id": row["applicant_person_id"], "household": row["household"],
            "hardship": row["hardship"], "documents_complete": True, "received_at": row["received_at"],
            "due_by": row["due_by"], "due_by_provisional": row["due_by_provisional"]}
        event_id = new_id()
        envelope = {"id": event_id, "type": ApplicationSubmitted.TYPE, "version": ApplicationSubmitted.VERSION,
                    "source": self.runtime.name, "subject": row["id"], "time": now,
                    "correlation_id": correlation_id_var.get(), "data": data}
        return {"event_id": event_id, "topic": _SUBMITTED_TOPIC, "key": row["id"], "type": ApplicationSubmitted.TYPE,
                "payload": orjson.dumps(envelope, option=orjson.OPT_UTC_Z), "created_at": now, "attempts": 0}

    async def _replay(self, key: str | None, digest: str | None, open_key: str,
                      principal: Principal) -> tuple[int, dict[str, Any]] | None:
        """One indexed query: the application holding this key, or the open one of this person+program."""
        cond = applications.c.open_key == open_key
        if key:
            cond = sa.or_(applications.c.idempotency_key == key, cond)
        async with self.runtime.session_factory() as s:
            found = (await s.execute(sa.select(applications.c.id, applications.c.idempotency_key,
                                               applications.c.request_hash).where(cond))).all()
            by_key = next((r for r in found if key and r.idempotency_key == key), None)
            if by_key is not None:
                if by_key.request_hash != digest:
                    raise Conflict("This Idempotency-Key was already used with a different request body",
                                   errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}])
                return 201, await self._read(s, by_key.id, principal)
            if found:
                try:
                    return 200, await self._read(s, found[0].id, principal)
                except NotFound:
                    # Open, but filed through a door this caller may not see (e.g. an e救助
                    # request for someone a clerk already registered): say so, show nothing.
                    raise Conflict("an application for this person and program is already open; "
                                   "the handling township office has it") from None
        return None

    def _emit_submitted(self, tx: UnitOfWork, row: Mapping[str, Any]) -> None:
        tx.emit(self._submitted(row), subject=row["id"])

    def _submitted(self, row: Mapping[str, Any]) -> ApplicationSubmitted:
        """The event carries the plain numbers (events between services are internal)."""
        row = self.vault.open(row)
        return ApplicationSubmitted(
            application_id=row["id"], channel=row["channel"], channel_ref=row["channel_ref"], program=row["program"],
            region_code=row["region_code"], handling_region_code=row["handling_region_code"], area=row["area"],
            applicant_person_id=row["applicant_person_id"], household=row["household"], hardship=row["hardship"],
            documents_complete=True, received_at=row["received_at"], due_by=row["due_by"],
            due_by_provisional=row["due_by_provisional"])

    # -- documents (一次性告知 → complete) ---------------------------------------------------
    async def supply_documents(self, app_id: str, documents: list[str], principal: Principal) -> dict[str, Any]:
        unknown = [(f"documents.{i}", f"unknown document code {d[:40]!r}")
                   for i, d in enumerate(documents) if d not in self.checklist.labels]
        if unknown:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in unknown),
                               errors=[{"field": f, "message": m} for f, m in unknown])
        now = self.clock()
        async with self.runtime.uow() as tx:
            row = await self._locked(tx, app_id, principal)
            if row["status"] != "received":
                raise Conflict(f"application {app_id} is already {row['status']}; documents are complete")
            provided = sorted(set(row["documents"]) | set(documents))
            missing = self.checklist.missing(row["program"], row["region_code"], provided)
            values: dict[str, Any] = {"documents": provided, "missing_documents": missing, "updated_at": now}
            steps = [("documents_supplied", "、".join(d["name"] for d in self.checklist.describe(sorted(set(documents)))))]
            if missing:
                steps.append(("documents_requested", "still missing: " + "、".join(
                    d["name"] for d in self.checklist.describe(missing))))
            else:
                # Acceptance starts the acceptance-to-payment clock (P3).
                overall = overall_deadline(row["program"], now, self.days, self.limits)
                values.update(status="accepted", accepted_at=now, due_by=overall.due,
                              due_by_provisional=overall.provisional)
                values.update(self._clock_values("accepted", row["program"], now, now))
                place = (row["hardship"] or {}).get("place_region_code")
                steps += [("accepted", None), ("dispatched", dispatch_reason(row["program"], row["region_code"], place))]
            await self._update(tx, app_id, values, steps, now, _actor(principal))
            if not missing:
                self._emit_submitted(tx, {**dict(row), **values})
        return await self.get(app_id, principal)

    # -- 首问负责: handoff ---------------------------------------------------------------------
    async def handoff(self, app_id: str, body: HandoffIn, principal: Principal) -> dict[str, Any]:
        now = self.clock()
        async with self.runtime.uow() as tx:
            row = await self._locked(tx, app_id, principal)
            if row["status"] == "closed":
                raise Conflict(f"application {app_id} is closed")
            owner = row["owner_sub"]
            pooled = owner.startswith(OFFICE_POOL) and principal.role != "applicant"
            if not (principal.sub == owner or principal.role in SUPERVISORS or pooled):
                raise Forbidden(f"首问负责 (I3): only the owner ({row['owner_role']}:{owner}) or a supervisor "
                                f"may hand this application off")
            if body.to_sub == owner:
                raise InvalidInput.field("to_sub", "already owns this application")
            await self._update(tx, app_id, {"owner_sub": body.to_sub, "owner_role": body.to_role, "updated_at": now},
                               [("handoff", f"{row['owner_role']}:{owner} → {body.to_role}:{body.to_sub}: {body.reason}")],
                               now, _actor(principal))
        return await self.get(app_id, principal)

    # -- 转办 -------------------------------------------------------------------------------
    async def transfer(self, app_id: str, body: TransferIn, principal: Principal) -> dict[str, Any]:
        now = self.clock()
        async with self.runtime.uow() as tx:
            row = await self._locked(tx, app_id, principal)
            if row["status"] == "closed":
                raise Conflict(f"application {app_id} is closed")
            writes = TimelineWrites()
            self._transfer(tx, writes, row, body.department, body.reason, source="officer", close=body.close,
                           now=now, actor=_actor(principal))
            await self._write(tx, writes)
        return await self.get(app_id, principal)

    def _transfer(self, tx: UnitOfWork, writes: TimelineWrites, row: Mapping[str, Any], department: str,
                  reason: str, *, source: str, close: bool, now: datetime, actor: str,
                  extra_values: dict[str, Any] | None = None,
                  steps_before: list[tuple[str, str | None]] | None = None,
                  text_before: str = "", correlation_id: str | None = None) -> None:
        writes.transfers.append({
            "id": str(uuid.uuid4()), "application_id": row["id"], "department": department, "reason": reason,
            "source": source, "closes_application": close, "actor": actor, "created_at": now})
        tx.emit(ApplicationTransferred(
            application_id=row["id"], department=department, region_code=row["region_code"],
            applicant_person_id=self._person(row), reason=reason, transferred_at=now), subject=row["id"],
            correlation_id=correlation_id)
        steps = list(steps_before or []) + [("transferred", f"to {department}: {reason}")]
        values = dict(extra_values or {}, updated_at=now)
        if close:
            text = text_before + texts.transfer_text(row["program"], department, reason)
            self._close(writes, row, values, steps, now, outcome="transferred", text=text)
        writes.update(row["id"], values, steps, now, actor)

    def _close(self, writes: TimelineWrites, row: Mapping[str, Any], values: dict[str, Any],
               steps: list[tuple[str, str | None]], now: datetime, *, outcome: str, text: str) -> None:
        """办结: feedback to the applicant (timeline) and the channel, then closed; the person
        may apply again for this program (open_key cleared)."""
        values.update(status="closed", open_key=None, closed_at=now, clock_due_by=None,
                      clock_provisional=False, clock_at_risk_on=None, deadline_state="on_time")
        steps.append(("feedback", self._feedback_line(row, text)))
        self._feedback_to_channel(writes, row, outcome, text, now)
        steps.append(("closed", None))

    def _feedback_line(self, row: Mapping[str, Any], text: str) -> str:
        to = {"hotline_12345": f"12345 work order {row['channel_ref']}", "e_jiuzhu": "e救助",
              "window": "the service window", "active_discovery": "the reporting coordinator"}.get(row["channel"], row["channel"])
        return f"to applicant and {to}: {text}"

    def _feedback_to_channel(self, writes: TimelineWrites, row: Mapping[str, Any], outcome: str, text: str,
                             now: datetime) -> None:
        """12345 hears back through its callback (kept and retried); other channels read the timeline."""
        if row["channel"] != "hotline_12345" or not row["channel_ref"]:
            return
        writes.feedback.append(feedback_outbox.feedback_row(
            channel=row["channel"], work_order=row["channel_ref"], region_code=row["region_code"],
            outcome=outcome, text=text, now=now, application_id=row["id"]))

    # -- helpers ----------------------------------------------------------------------------
    def _person(self, row: Mapping[str, Any]) -> str:
        """The applicant's identity number of a row (decrypted when the row came from the database)."""
        return row.get("applicant_person_id") or self.vault.person(row["id"], row["applicant_person_enc"])

    def _clock_values(self, status: str, program: str, started_at: datetime,
                      accepted_at: datetime | None) -> dict[str, Any]:
        """The clock of the step just entered (reset to on_time: a new step, a new clock)."""
        overall = overall_deadline(program, accepted_at, self.days, self.limits) if accepted_at else None
        clock: Clock | None = step_deadline(status, program, started_at, overall, self.days, self.limits)
        return {"step_started_at": started_at, "clock_due_by": clock.due if clock else None,
                "clock_provisional": clock.provisional if clock else False,
                "clock_at_risk_on": clock.at_risk_on if clock else None, "deadline_state": "on_time"}

    async def _locked(self, tx: UnitOfWork, app_id: str, principal: Principal | None) -> Mapping[str, Any]:
        row = (await tx.session.execute(sa.select(applications).where(applications.c.id == app_id)
                                        .with_for_update())).mappings().first()
        if row is None or (principal is not None and not self._visible(row, principal)):
            raise NotFound(f"application {app_id} not found")
        return row

    async def _update(self, tx: UnitOfWork, app_id: str, values: dict[str, Any],
                      steps: list[tuple[str, str | None]], at: datetime, actor: str) -> None:
        writes = TimelineWrites()
        writes.update(app_id, values, steps, at, actor)
        await self._write(tx, writes)

    async def _write(self, tx: UnitOfWork, writes: TimelineWrites) -> None:
        await writes.flush(tx.session)
        if writes.feedback and self.feedback is not None:
            self.feedback.wake_after_commit(tx.session)

    @staticmethod
    async def _lock_for_events(tx: UnitOfWork, app_ids: set[str]) -> dict[str, Mapping[str, Any]]:
        """The applications a run of events is about, locked for this transaction (one query)."""
        rows = await tx.session.execute(LOCK_FOR_EVENTS, {"ids": list(app_ids)})
        return {r["id"]: r for r in rows.mappings()}

    # -- read ---------------------------------------------------------------------------------
    async def get(self, app_id: str, principal: Principal) -> dict[str, Any]:
        async with self.runtime.session_factory() as s:
            return await self._read(s, app_id, principal)

    @staticmethod
    def _visible(row: Mapping[str, Any], principal: Principal) -> bool:
        """An applicant sees only what they filed; staff only what lies in their region."""
        if principal.role == "applicant":
            return bool(row["submitted_by_role"] == "applicant" and row["submitted_by_sub"] == principal.sub)
        return region_covers(principal.region, row["region_code"]) or region_covers(
            principal.region, row["handling_region_code"])

    async def _read(self, s: Any, app_id: str, principal: Principal) -> dict[str, Any]:
        row = (await s.execute(sa.select(applications).where(applications.c.id == app_id))).mappings().first()
        # Outside one's scope is indistinguishable from absent: nothing is revealed.
        if row is None or not self._visible(row, principal):
            raise NotFound(f"application {app_id} not found")
        steps = (await s.execute(sa.select(application_steps).where(application_steps.c.application_id == app_id)
                                 .order_by(application_steps.c.id))).mappings().all()
        moved = (await s.execute(sa.select(transfers).where(transfers.c.application_id == app_id)
                                 .order_by(transfers.c.created_at))).mappings().all()
        return self._present(self.vault.open(row), steps, moved, principal)

    def _present(self, row: Mapping[str, Any], steps: Any, moved: Any, principal: Principal) -> dict[str, Any]:
        """The ApplicationOut shape as a plain dict (serialised by orjson: the hot path skips pydantic)."""
        role = principal.role
        decision = None
        if row.get("decision_id"):
            decision = {"decision_id": row["decision_id"], "outcome": row["decision_outcome"],
                        "monthly_amount": row["monthly_amount"], "one_time_amount": row["one_time_amount"]}
        return {
            "application_id": row["id"], "status": row["status"], "channel": row["channel"],
            "channel_ref": row["channel_ref"], "program": row["program"], "region_code": row["region_code"],
            "handling_region_code": row["handling_region_code"],
            "applicant_person_id": present_id(row["applicant_person_id"], role),
            "missing_documents": self.checklist.describe(row["missing_documents"]),
            "received_at": row["received_at"], "due_by": row["due_by"], "due_by_provisional": row["due_by_provisional"],
            "case_id": row["case_id"], "owner": row["owner_sub"], "owner_role": row.get("owner_role"),
            "step_due_by": row.get("clock_due_by"), "step_due_by_provisional": bool(row.get("clock_provisional")),
            "deadline_state": row.get("deadline_state") or "on_time", "decision": decision,
            "closed_at": row.get("closed_at"),
            "members": [{"person_id": present_id(m["person_id"], role), "name": m.get("name"),
                         "relation": m.get("relation") or "other"} for m in row["household"]["members"]],
            "transfers": [{"transfer_id": t["id"], "department": t["department"], "reason": t["reason"],
                           "source": t["source"], "closes_application": t["closes_application"], "actor": t["actor"],
                           "at": t["created_at"]} for t in moved],
            "timeline": [{"step": st["step"], "at": st["at"], "actor": st["actor"], "detail": st["detail"]}
                         for st in steps],
        }

    # -- lists: 限时办理 (I3) -------------------------------------------------------------------
    @staticmethod
    def state_condition(state: str, today: date) -> Any:
        """SQL for an open application's clock state on ``today`` (see domain.deadlines.clock_state)."""
        due, risk = applications.c.clock_due_by, applications.c.clock_at_risk_on
        if state == "overdue":
            return due < today
        if state == "at_risk":
            return sa.and_(due >= today, risk <= today)
        return sa.and_(due >= today, sa.or_(risk.is_(None), risk > today))

    async def list(self, principal: Principal, *, state: str | None, region_code: str | None, status: str | None,
                   channel: str | None, on: date | None, limit: int) -> tuple[date, list[ApplicationSummary]]:
        today = on or to_shanghai_date(self.clock())
        q = sa.select(applications.c.id, applications.c.status, applications.c.channel, applications.c.program,
                      applications.c.region_code, applications.c.handling_region_code,
                      applications.c.applicant_person_enc, applications.c.received_at, applications.c.due_by,
                      applications.c.clock_due_by, applications.c.clock_at_risk_on, applications.c.owner_sub)
        if principal.role == "applicant":
            q = q.where(applications.c.submitted_by_role == "applicant", applications.c.submitted_by_sub == principal.sub)
        else:
            scope = region_code or principal.region
            if not principal.covers(scope):
                raise Forbidden(f"region {scope} is outside this token's region {principal.region}")
            prefix = region_prefix(scope) + "%"
            q = q.where(sa.or_(applications.c.region_code.like(prefix), applications.c.handling_region_code.like(prefix)))
        if state is not None:
            q = q.where(applications.c.clock_due_by.is_not(None), self.state_condition(state, today))
            q = q.order_by(applications.c.clock_due_by, applications.c.received_at)
        else:
            q = q.order_by(applications.c.received_at.desc())
        if status is not None:
            q = q.where(applications.c.status == status)
        if channel is not None:
            q = q.where(applications.c.channel == channel)
        async with self.runtime.session_factory() as s:
            rows = (await s.execute(q.limit(limit))).all()
        return today, [ApplicationSummary(
            application_id=r.id, status=r.status, channel=r.channel, program=r.program, region_code=r.region_code,
            handling_region_code=r.handling_region_code,
            applicant_person_id=present_id(self.vault.person(r.id, r.applicant_person_enc), principal.role),
            received_at=r.received_at,
            due_by=r.due_by, step_due_by=r.clock_due_by, deadline_state=clock_state(r.clock_due_by, r.clock_at_risk_on, today),
            owner=r.owner_sub) for r in rows]

    # -- events from other services -------------------------------------------------------------
    # Each event type has a batch handler (a run of events of one fetched batch, in order, in the
    # consumer's transaction: one lock of the applications, set-based writes); the per-event
    # handler is the batch of one, so both paths store exactly the same rows.
    async def on_case_opened(self, tx: UnitOfWork, env: Envelope, data: CaseOpened) -> None:
        await self.on_cases_opened(tx, [(env, data)])

    async def on_cases_opened(self, tx: UnitOfWork, events: list[tuple[Envelope, CaseOpened]]) -> None:
        writes = TimelineWrites()
        now = _now()
        async for env, data, found in self._events_of_known_applications(tx, events, "case_for_unknown_application"):
            row = writes.current(found)
            values: dict[str, Any] = {"case_id": data.case_id, "updated_at": now}
            if row["status"] == "accepted":
                values["status"] = "under_review"
                values.update(self._clock_values("under_review", row["program"], data.opened_at, row["accepted_at"]))
            writes.update(row["id"], values, [("under_review", f"case {data.case_id} opened")],
                          data.opened_at, f"eligibility:{env.source}")
        await self._write(tx, writes)

    async def on_decision_made(self, tx: UnitOfWork, env: Envelope, data: DecisionMade) -> None:
        await self.on_decisions_made(tx, [(env, data)])

    async def on_decisions_made(self, tx: UnitOfWork, events: list[tuple[Envelope, DecisionMade]]) -> None:
        writes = TimelineWrites()
        now = _now()
        async for env, data, found in self._events_of_known_applications(tx, events, "decision_for_unknown_application"):
            self._decided(tx, writes, writes.current(found), env, data, now)
        await self._write(tx, writes)

    async def _events_of_known_applications(self, tx: UnitOfWork, events: list[tuple[Envelope, Any]],
                                            unknown: str) -> AsyncIterator[tuple[Envelope, Any, Mapping[str, Any]]]:
        """Each event with its application's row, locked for the transaction (one read for the
        run); an event about an application this service never had is logged and skipped."""
        rows = await self._lock_for_events(tx, {data.application_id for _, data in events})
        for env, data in events:
            found = rows.get(data.application_id)
            if found is None:
                log.warning(unknown, application_id=data.application_id, case_id=getattr(data, "case_id", None),
                            correlation_id=env.correlation_id)
                continue
            yield env, data, found

    def _decided(self, tx: UnitOfWork, writes: TimelineWrites, row: Mapping[str, Any], env: Envelope,
                 data: DecisionMade, now: datetime) -> None:
        """审核确认 reached intake: timeline "decided" with outcome and amount, 反馈 to the
        applicant and the channel; denied → 转办 rural revitalization, transferred → the named
        department (I2, L5), both closing the application."""
        if row["decision_id"] == data.decision_id:
            return  # the same decision re-sent under a new event id
        actor = f"eligibility:{data.decided_by}"
        monthly = format_yuan(data.monthly_amount) if data.monthly_amount is not None else None
        one_time = format_yuan(data.one_time_amount) if data.one_time_amount is not None else None
        detail = f"{data.outcome}"
        if monthly:
            detail += f"; monthly {monthly}"
        if one_time:
            detail += f"; one-time {one_time}"
        detail += f"; {data.approval_level} level; decision {data.decision_id}"
        if data.overridden:
            detail += "; officer override"
        if data.reasons:
            detail += "; reasons: " + ", ".join(data.reasons[:10])
        values: dict[str, Any] = {
            "decision_id": data.decision_id, "decision_outcome": data.outcome, "monthly_amount": monthly,
            "one_time_amount": one_time, "case_id": row["case_id"] or data.case_id, "updated_at": now,
            "stages_expected": len(data.staged_payments) if data.staged_payments else None}
        steps: list[tuple[str, str | None]] = [("decided", detail)]
        if row["status"] == "closed":
            writes.update(row["id"], values, steps, data.decided_at, actor)
            return
        text = texts.decision_text(row["program"], data.outcome, monthly, one_time)
        department = transfer_for_decision(data.outcome, data.transfer_department)
        values["status"] = "decided"
        if department is not None:
            # One 反馈 for both: the decision and where the case went.
            reason = ("not eligible for social assistance: referred for rural revitalization follow-up (I2, L5)"
                      if data.outcome == "denied" else
                      f"decision {data.decision_id}: handled by {data.transfer_department or 'another department'}")
            self._transfer(tx, writes, row, department, reason, source="decision", close=True, now=now, actor=actor,
                           extra_values=values, steps_before=steps, text_before=text,
                           correlation_id=env.correlation_id)
            return
        self._feedback_to_channel(writes, row, data.outcome, text, now)
        values.update(self._clock_values("decided", row["program"], data.decided_at, row["accepted_at"]))
        steps.append(("feedback", self._feedback_line(row, text)))
        writes.update(row["id"], values, steps, data.decided_at, actor)

    async def on_disbursement_paid(self, tx: UnitOfWork, env: Envelope, data: DisbursementPaid) -> None:
        """Money reached the bank: timeline "paid"; once every stage is paid, 反馈 and "closed"."""
        row = (await self._lock_for_events(tx, {data.application_id})).get(data.application_id)
        if row is None:
            log.warning("payment_for_unknown_application", application_id=data.application_id)
            return
        now = _now()
        actor = f"payments:{env.source}"
        amount = format_yuan(data.amount)
        detail = (f"{amount} yuan from {data.funded_from}; disbursement {data.disbursement_id}; "
                  + ("within" if data.within_time_limit else "OUTSIDE") + f" the time limit (pay by {data.pay_by})")
        writes = TimelineWrites()
        if row["status"] == "closed":
            writes.update(row["id"], {"updated_at": now}, [("paid", detail)], data.paid_at, actor)
            await self._write(tx, writes)
            return
        paid = int(row["paid_count"] or 0) + 1
        values: dict[str, Any] = {"paid_count": paid, "status": "paid", "updated_at": now,
                                  "case_id": row["case_id"] or data.case_id}
        steps: list[tuple[str, str | None]] = [("paid", detail)]
        if row["stages_expected"] is None or paid >= row["stages_expected"]:
            self._close(writes, row, values, steps, data.paid_at, outcome="paid",
                        text=texts.paid_text(row["program"], data.amount))
        else:
            values.update(clock_due_by=None, clock_provisional=False, clock_at_risk_on=None, deadline_state="on_time")
        writes.update(row["id"], values, steps, data.paid_at, actor)
        await self._write(tx, writes)
