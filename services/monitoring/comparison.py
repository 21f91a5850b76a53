"""M2–M6 comparison, set-based: partner records (one POSTed event, one Kafka message or a whole
monthly file) against the register, in a handful of ``INSERT … SELECT`` statements inside the
caller's transaction — never a Python loop over the register.

1. poverty-monitoring records put people in ``unstable_post_poverty`` / ``at_risk_of_poverty`` (M1);
2. deaths, large medical expenses, unemployment, new disabilities and school enrolments of
   people in the register raise graded warnings (M6 死亡, M3 因病/因失业/因残/因学); for a watched
   person who is not covered by 低保/特困 the warning is a coverage gap (M4 防漏);
3. poverty-monitoring people who look eligible but are not covered raise M4 warnings;
4. the dead leave every category (history rows say which record reported it);
5. each new warning emits ``monitoring.warning.raised``; each new death warning emits
   ``monitoring.person.died`` (payments stops benefits at once, P5). On PostgreSQL the outbox
   rows are built by the same ``INSERT … SELECT``.

One warning per (event type, person, day) — one death warning per person — so a re-sent record or
re-uploaded file changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.calendar import WorkingCalendar, to_shanghai_date
from shared.events.monitoring import PersonDied, WarningRaised
from shared.logging import correlation_id_var
from shared.messaging.unit_of_work import UnitOfWork
from shared.pii import PersonVault

from services.monitoring.domain.rules import TRIGGER_RULES, WarningRules
from services.monitoring.models import partner_records, register, register_history, reporting_units, warnings

P, R, W = partner_records, register, warnings
# The columns partner rows are matched to the register on: both change together with
# columnar.MatchKey (e.g. to HMAC index columns when ID numbers are stored encrypted).
REGISTER_KEY = register.c.person_id
RECORD_KEY = partner_records.c.person_id

# A columnar file's keys to probe and the register facts found for them; temporary tables of the
# transaction: never logged, dropped at commit.
_temp = sa.MetaData()
KEYS = sa.Table("cmp_keys", _temp, sa.Column("match_key", sa.Text))
KEYS_DDL = "CREATE TEMPORARY TABLE cmp_keys (match_key text) ON COMMIT DROP"
FACTS = sa.Table(
    "cmp_facts", _temp,
    sa.Column("match_key", sa.Text), sa.Column("region_code", sa.Text), sa.Column("covered", sa.Integer),
    sa.Column("watched", sa.Integer))
FACTS_DDL = ("CREATE TEMPORARY TABLE cmp_facts (match_key text PRIMARY KEY, region_code text, covered integer, "
             "watched integer) ON COMMIT DROP")


# JIT pays off for long scans of computed expressions; these statements are index probes and
# set-based writes whose (mis)estimated cost crosses jit_above_cost, and compiling them took
# 125 ms of a 1.4 s register probe (auto_explain, 5M-person benchmark).
NO_JIT = "SET LOCAL jit = off"


@dataclass
class ComparisonResult:
    first_id: int = 0  # warnings of this run have ids above this one
    warnings_raised: int = 0
    deaths_detected: int = 0
    register_entries: int = 0
    register_exits: int = 0


def _alive(t: Any) -> sa.ColumnElement[bool]:
    """No death warning for the person: a poverty-monitoring record (a re-sent file, a late one)
    neither puts someone reported dead back into the register nor raises a coverage gap for them."""
    return ~sa.exists().where(W.c.dedupe_key == sa.literal("death:") + t.c.person_id)


def dialect_insert(session: AsyncSession, table: sa.Table) -> Any:
    if session.bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class ComparisonEngine:
    def __init__(self, rules: WarningRules, calendar: WorkingCalendar, *, medical_threshold: Decimal,
                 service: str = "monitoring", persons: PersonVault) -> None:
        # person_id columns (partner records, register, warnings) hold person keys: the joins
        # below compare keys; the numbers come from the vault only for the events
        self.persons = persons
        self.rules = rules
        self.calendar = calendar
        self.threshold = medical_threshold
        self.service = service

    async def run(self, tx: UnitOfWork, scope: sa.ColumnElement[bool], *, batch: str, now: datetime,
                  source: str, warning_events: bool = True, matched: bool = False) -> ComparisonResult:
        """``warning_events=False`` (monthly files): deaths still emit ``monitoring.person.died`` one
        by one, but the warnings are announced by the file's one ``monitoring.comparison.completed``
        and read from ``GET /v1/warnings`` — not 100,000 events for one upload.

        ``matched=True``: the records in scope are a columnar file's matched rows, and the register
        facts of their people are in ``cmp_facts`` already (``probe_register``; no second probe)."""
        s = tx.session
        out = ComparisonResult()
        today = to_shanghai_date(now)
        if s.bind.dialect.name == "postgresql":
            await s.execute(sa.text("SET LOCAL work_mem = '64MB'"))  # the joins' sorts and hashes stay in memory
            await s.execute(sa.text(NO_JIT))
        max_before = int(await s.scalar(sa.select(sa.func.coalesce(sa.func.max(W.c.id), 0))) or 0)
        out.first_id = max_before
        out.register_entries = await self._register_entries(s, scope, now)
        if matched and out.register_entries:
            await self._refresh_facts(s, scope)
        await self._trigger_warnings(s, scope, batch=batch, now=now, today=today, matched=matched)
        await self._gap_warnings(s, scope, batch=batch, now=now, today=today)
        out.register_exits = await self._death_exits(s, scope, now, source)
        new = sa.and_(W.c.id > max_before, W.c.batch == batch)
        counts = (await s.execute(sa.select(sa.func.count(), sa.func.count(sa.case((W.c.kind == "death", 1))))
                                  .where(new))).one()
        out.warnings_raised, out.deaths_detected = int(counts[0]), int(counts[1])
        if out.warnings_raised:
            await self._emit(tx, new, now=now, source=source, warning_events=warning_events)
        return out

    # -- 1. register entries from poverty monitoring (M1) ------------------------------------
    async def _register_entries(self, s: AsyncSession, scope: sa.ColumnElement[bool], now: datetime) -> int:
        absent = ~sa.exists().where(R.c.person_id == P.c.person_id, R.c.category == P.c.category)
        fresh = (sa.select(P.c.person_id, P.c.category, sa.func.max(P.c.region_code).label("region_code"),
                           sa.func.min(P.c.occurred_on).label("since"), sa.func.min(P.c.id).label("rid"))
                 .where(scope, P.c.type == "poverty_monitoring", P.c.category.is_not(None), absent, _alive(P))
                 .group_by(P.c.person_id, P.c.category)).subquery("fresh")
        hist = sa.select(fresh.c.person_id, fresh.c.category, fresh.c.region_code, sa.literal("enter"),
                         fresh.c.since, sa.literal("reported by rural revitalization (返贫监测)"),
                         sa.literal("partner:poverty_monitoring"), sa.cast(fresh.c.rid, sa.String),
                         sa.literal(now, type_=R.c.updated_at.type))
        res = await s.execute(register_history.insert().from_select(
            ["person_id", "category", "region_code", "action", "valid_from", "reason", "source_type", "source_ref",
             "recorded_at"], hist))
        if not res.rowcount:
            return 0
        entered = sa.select(fresh.c.person_id, fresh.c.category, fresh.c.region_code, fresh.c.since,
                            sa.literal("partner:poverty_monitoring"), sa.cast(fresh.c.rid, sa.String),
                            sa.literal(now, type_=R.c.updated_at.type))
        await s.execute(dialect_insert(s, R).from_select(
            ["person_id", "category", "region_code", "since", "source_type", "source_ref", "updated_at"],
            entered.where(sa.true())).on_conflict_do_nothing())  # a concurrent run may have added one
        units = (sa.select(P.c.region_code, sa.literal("register"), sa.func.min(P.c.occurred_on))
                 .where(scope, P.c.type == "poverty_monitoring", P.c.region_code.is_not(None))
                 .group_by(P.c.region_code))
        await s.execute(dialect_insert(s, reporting_units).from_select(
            ["region_code", "source", "first_seen"], units).on_conflict_do_nothing())
        return int(res.rowcount)

    # -- 2. warnings for people in the register (M3, M4, M6) ---------------------------------
    def _due_columns(self, level: Any, today: date) -> tuple[Any, Any]:
        due = self.rules.due_by_level(today, self.calendar)
        due_on = sa.case(*((level == lvl, sa.literal(d.due, sa.Date)) for lvl, d in due.items() if lvl != 3),
                         else_=sa.literal(due[3].due, sa.Date))
        provisional = sa.case(*((level == lvl, sa.literal(d.provisional)) for lvl, d in due.items() if lvl != 3),
                              else_=sa.literal(due[3].provisional))
        return due_on, provisional

    def _probe(self, key: Any) -> Any:
        """The register facts of one person (LATERAL: one index probe per key, never a scan of the
        whole register): their village, whether a category covers them, whether one watches them."""
        covered = sa.func.max(sa.case((R.c.category.in_(self.rules.covered), 1), else_=0))
        watched = sa.func.max(sa.case((R.c.category.in_(self.rules.watched), 1), else_=0))
        return (sa.select(sa.func.min(R.c.region_code).label("region_code"), covered.label("covered"),
                          watched.label("watched"), sa.func.count().label("n"))
                .where(REGISTER_KEY.collate("C") == key).lateral("r"))  # ix_register_lookup: index-only

    def relevant(self, t: Any) -> sa.ColumnElement[bool]:
        """The records the trigger rules act on (the rules' filter, over any table with type/amount)."""
        return sa.and_(t.c.type.in_(list(TRIGGER_RULES)),
                       sa.or_(t.c.type != "medical_expense", t.c.amount >= self.threshold))

    async def probe_register(self, s: AsyncSession) -> None:
        """PostgreSQL, columnar files: the register facts of every key in ``cmp_keys`` (distinct, in
        "C" order already, so the probes walk the index), one index-only probe each, into ``cmp_facts``."""
        await s.execute(sa.text(FACTS_DDL))
        await self._probe_into_facts(s, sa.select(KEYS.c.match_key).subquery("k"))

    async def _probe_into_facts(self, s: AsyncSession, keys: Any) -> None:
        r = self._probe(keys.c.match_key)
        found = (sa.select(keys.c.match_key, r.c.region_code, r.c.covered, r.c.watched)
                 .select_from(keys.join(r, r.c.n > 0)))
        await s.execute(FACTS.insert().from_select(["match_key", "region_code", "covered", "watched"], found))
        await s.execute(sa.text("ANALYZE cmp_facts"))  # temp tables have no statistics of their own

    async def _refresh_facts(self, s: AsyncSession, scope: sa.ColumnElement[bool]) -> None:
        """After this file's M1 entries: the facts of the people they entered, probed again (the
        row-by-row path probes after the entries too)."""
        entered = (sa.select(RECORD_KEY.label("match_key"))
                   .where(scope, P.c.type == "poverty_monitoring", P.c.category.is_not(None))
                   .group_by(RECORD_KEY)).subquery("k")
        await s.execute(FACTS.delete().where(FACTS.c.match_key.in_(sa.select(entered.c.match_key))))
        await self._probe_into_facts(s, entered)

    async def _trigger_warnings(self, s: AsyncSession, scope: sa.ColumnElement[bool], *, batch: str,
                                now: datetime, today: date, matched: bool = False) -> None:
        rules = self.rules
        covered = sa.func.max(sa.case((R.c.category.in_(rules.covered), 1), else_=0))
        watched = sa.func.max(sa.case((R.c.category.in_(rules.watched), 1), else_=0))
        relevant = sa.and_(scope, self.relevant(P))
        if matched:
            # the facts probe_register found for each record's key; of two records with
            # one dedupe key the first in the file wins, as below
            m = (sa.select(P.c.id.label("rid"), P.c.type, P.c.person_id, P.c.occurred_on, P.c.amount, P.c.grade,
                           FACTS.c.region_code, FACTS.c.covered, FACTS.c.watched)
                 .select_from(P.join(FACTS, FACTS.c.match_key == RECORD_KEY)).where(relevant)
                 .order_by(P.c.person_id.collate("C"), P.c.id)).subquery("m")
        elif s.bind.dialect.name == "postgresql":
            # records in person order: consecutive probes hit neighbouring index pages; then in record
            # order, so of two records with one dedupe key (two deaths of one person) the first wins
            ps = (sa.select(P.c.id, P.c.type, P.c.person_id, P.c.occurred_on, P.c.amount, P.c.grade)
                  .where(relevant).order_by(P.c.person_id.collate("C"), P.c.id)).subquery("ps")
            r = self._probe(ps.c.person_id)
            m = (sa.select(ps.c.id.label("rid"), ps.c.type, ps.c.person_id, ps.c.occurred_on, ps.c.amount,
                           ps.c.grade, r.c.region_code, r.c.covered, r.c.watched)
                 .select_from(ps.join(r, r.c.n > 0))).subquery("m")
        else:
            m = (sa.select(P.c.id.label("rid"), P.c.type, P.c.person_id, P.c.occurred_on, P.c.amount, P.c.grade,
                           sa.func.min(R.c.region_code).label("region_code"), covered.label("covered"),
                           watched.label("watched"))
                 .select_from(P.join(R, R.c.person_id == P.c.person_id)).where(relevant)
                 .group_by(P.c.id, P.c.type, P.c.person_id, P.c.occurred_on, P.c.amount, P.c.grade)).subquery("m")

        illness, disability = rules.rule("illness"), rules.rule("disability")
        multiple = Decimal(str(illness.extra.get("level_1_at_threshold_multiple", "0")))
        illness_level: Any = sa.literal(illness.level)
        if multiple:
            illness_level = sa.case((m.c.amount >= self.threshold * multiple, 1), else_=illness.level)
        disability_level: Any = sa.literal(disability.level)
        if disability.extra.get("level_1_grades"):
            disability_level = sa.case((m.c.grade.in_(disability.extra["level_1_grades"]), 1),
                                       else_=disability.level)
        trigger_level = sa.case(
            (m.c.type == "death", rules.rule("death").level),
            (m.c.type == "medical_expense", illness_level),
            (m.c.type == "disability_certified", disability_level),
            (m.c.type == "unemployment", rules.rule("unemployment").level),
            else_=rules.rule("schooling").level)
        gap_rule = rules.rule("coverage_gap")
        gap = sa.and_(m.c.type != "death", m.c.covered == 0, m.c.watched == 1)
        by_type = lambda attr: sa.case(*((m.c.type == t, getattr(rules.rule(k), attr))  # noqa: E731
                                         for t, k in TRIGGER_RULES.items()), else_="")
        kind_by_type = sa.case(*((m.c.type == t, k) for t, k in TRIGGER_RULES.items()), else_="")
        g = sa.select(
            m.c.rid, m.c.type, m.c.person_id, m.c.occurred_on, m.c.amount, m.c.grade, m.c.region_code,
            (m.c.covered == 1).label("covered"),
            sa.case((gap, "coverage_gap"), else_=kind_by_type).label("kind"),
            sa.case((gap, sa.literal(gap_rule.label + "·") + by_type("label")), else_=by_type("label")).label("label"),
            sa.case((gap, gap_rule.rule), else_=by_type("rule")).label("rule"),
            sa.case((gap, sa.case((trigger_level < gap_rule.level, trigger_level), else_=gap_rule.level)),
                    else_=trigger_level).label("level"),
        ).subquery("g")
        dedupe = sa.case((g.c.type == "death", sa.literal("death:") + g.c.person_id),
                         else_=sa.literal("event:") + g.c.type + ":" + g.c.person_id + ":"
                         + sa.cast(g.c.occurred_on, sa.String))
        hash_join = matched and s.bind.dialect.name == "postgresql"
        if hash_join:
            # The file's records were COPYed a moment ago, so the planner has no statistics for them
            # and takes their ~100,000 rows for a handful: a nested loop of one cmp_facts index probe
            # per record (0.8 s of the 5M-person benchmark) where one hash of the facts does it.
            await s.execute(sa.text("SET LOCAL enable_nestloop = off"))
        await self._insert_warnings(s, g, dedupe, source_type=sa.literal("partner:") + g.c.type, batch=batch,
                                    now=now, today=today)
        if hash_join:
            await s.execute(sa.text("SET LOCAL enable_nestloop = on"))

    async def _insert_warnings(self, s: AsyncSession, g: Any, dedupe: Any, *, source_type: Any, batch: str,
                               now: datetime, today: date) -> None:
        due_on, provisional = self._due_columns(g.c.level, today)
        sel = sa.select(
            dedupe, g.c.rule, g.c.kind, g.c.label, g.c.level, g.c.person_id, g.c.region_code, g.c.covered,
            source_type, g.c.rid, sa.literal(batch), g.c.occurred_on, g.c.amount, g.c.grade,
            sa.literal(now, type_=W.c.raised_at.type), sa.literal(today, sa.Date), due_on, provisional,
            sa.literal("open"),
        ).where(sa.true())
        cols = ["dedupe_key", "rule", "kind", "label", "level", "person_id", "region_code", "covered", "source_type",
                "source_record_id", "batch", "occurred_on", "amount", "grade", "raised_at", "raised_on", "due_on",
                "due_provisional", "status"]
        await s.execute(dialect_insert(s, W).from_select(cols, sel).on_conflict_do_nothing())

    # -- 3. coverage gaps in the poverty-monitoring population (M4) --------------------------
    async def _gap_warnings(self, s: AsyncSession, scope: sa.ColumnElement[bool], *, batch: str, now: datetime,
                            today: date) -> None:
        gap = self.rules.rule("coverage_gap")
        is_covered = sa.exists().where(R.c.person_id == P.c.person_id, R.c.category.in_(self.rules.covered))
        open_gap = sa.exists().where(W.c.person_id == P.c.person_id, W.c.kind == "coverage_gap", W.c.status == "open")
        g = (sa.select(P.c.id.label("rid"), P.c.type, P.c.person_id, P.c.occurred_on,
                       sa.cast(sa.null(), W.c.amount.type).label("amount"),
                       sa.cast(sa.null(), sa.SmallInteger).label("grade"), P.c.region_code,
                       sa.false().label("covered"), sa.literal("coverage_gap").label("kind"),
                       sa.literal(gap.label).label("label"), sa.literal(gap.rule).label("rule"),
                       sa.literal(gap.level).label("level"))
             .where(scope, P.c.type == "poverty_monitoring", P.c.looks_eligible.is_(True),
                    P.c.region_code.is_not(None), ~is_covered, ~open_gap, _alive(P))).subquery("gp")
        dedupe = (sa.literal("gap:") + g.c.person_id + ":"
                  + sa.func.substr(sa.cast(g.c.occurred_on, sa.String), 1, 7))
        await self._insert_warnings(s, g, dedupe, source_type=sa.literal("partner:poverty_monitoring"),
                                    batch=batch, now=now, today=today)

    # -- 4. the dead leave the register (M6) -------------------------------------------------
    async def _death_exits(self, s: AsyncSession, scope: sa.ColumnElement[bool], now: datetime, source: str) -> int:
        d = (sa.select(P.c.person_id, sa.func.min(P.c.occurred_on).label("died_on"), sa.func.min(P.c.id).label("rid"))
             .where(scope, P.c.type == "death").group_by(P.c.person_id)).subquery("d")
        leave = (sa.select(R.c.person_id, R.c.category, R.c.region_code, sa.literal("leave"), R.c.since, d.c.died_on,
                           sa.literal(f"death reported ({source})"), sa.literal("partner:death"),
                           sa.cast(d.c.rid, sa.String), sa.literal(now, type_=R.c.updated_at.type))
                 .select_from(R.join(d, d.c.person_id == R.c.person_id)))
        cols = ["person_id", "category", "region_code", "action", "valid_from", "valid_to", "reason", "source_type",
                "source_ref", "recorded_at"]
        if s.bind.dialect.name == "postgresql":
            # one pass: DELETE … RETURNING feeds the history rows; = ANY(ARRAY(…)) probes the primary key
            dead = sa.func.array(sa.select(P.c.person_id).where(scope, P.c.type == "death")
                                 .order_by(P.c.person_id.collate("C")).scalar_subquery())
            gone = (R.delete().where(R.c.person_id == sa.func.any(dead))
                    .returning(R.c.person_id, R.c.category, R.c.region_code, R.c.since)).cte("gone")
            hist = (sa.select(gone.c.person_id, gone.c.category, gone.c.region_code, sa.literal("leave"),
                              gone.c.since, d.c.died_on, sa.literal(f"death reported ({source})"),
                              sa.literal("partner:death"), sa.cast(d.c.rid, sa.String),
                              sa.literal(now, type_=R.c.updated_at.type))
                    .select_from(gone.join(d, d.c.person_id == gone.c.person_id)))
            res = await s.execute(register_history.insert().from_select(cols, hist).add_cte(gone))
            return int(res.rowcount or 0)
        res = await s.execute(register_history.insert().from_select(cols, leave))
        if res.rowcount:
            await s.execute(R.delete().where(R.c.person_id.in_(sa.select(P.c.person_id).where(scope, P.c.type == "death"))))
        return int(res.rowcount or 0)

    # -- 5. events --------------------------------------------------------------------------
    async def _emit(self, tx: UnitOfWork, new: sa.ColumnElement[bool], *, now: datetime, source: str,
                    warning_events: bool) -> None:
        s = tx.session
        if s.bind.dialect.name == "postgresql":
            await tx.flush()  # keep the outbox in emit order: earlier emits first
            await self._emit_pg(s, new, source=source, warning_events=warning_events)
            return
        rows = await self.persons.rows_with_numbers(
            s, (await s.execute(sa.select(W).where(new).order_by(W.c.id))).mappings().all(), "person_id")
        for w in rows:
            if w["kind"] == "death":
                tx.emit(PersonDied(person_id=w["person_id"], date_of_death=w["occurred_on"], source=source,
                                   reported_at=w["raised_at"]), subject=w["person_id"])
        if warning_events:
            for w in rows:
                tx.emit(self.raised_event(w), subject=w["person_id"])

    @staticmethod
    def raised_event(w: Any) -> WarningRaised:
        return WarningRaised(warning_id=w["id"], rule=w["rule"], kind=w["kind"], level=w["level"],
                             person_id=w["person_id"], region_code=w["region_code"], due_on=w["due_on"],
                             due_provisional=w["due_provisional"], raised_at=w["raised_at"],
                             source_type=w["source_type"])

    async def _emit_pg(self, s: AsyncSession, new: sa.ColumnElement[bool], *, source: str,
                       warning_events: bool) -> None:
        """The outbox rows of every new warning (and death) in one INSERT … SELECT each; the JSON
        is the envelope ``shared.messaging.envelope.Envelope`` would write."""
        compiled = new.compile(dialect=s.bind.dialect, compile_kwargs={"literal_binds": True})
        cid = correlation_id_var.get()
        # the events carry the number: key → number pairs from the vault, joined in as parameters
        people = (await s.execute(sa.text(f"SELECT DISTINCT person_id FROM warnings WHERE {compiled}"
                                          + ("" if warning_events else " AND warnings.kind = 'death'")))).scalars()
        numbers = await self.persons.reveal(s, people)
        # (a key missing from the vault stays on the event as it is: its consumer dead-letters it, visibly)
        vault = "LEFT JOIN unnest(CAST(:keys AS text[]), CAST(:numbers AS text[])) AS n(k, number) ON n.k = warnings.person_id"
        raised = f"""
            INSERT INTO outbox (event_id, topic, key, type, payload, created_at, attempts)
            SELECT e.eid::text, 'monitoring.warning', e.person, '{WarningRaised.TYPE}',
                   convert_to(json_build_object(
                       'id', e.eid::text, 'type', '{WarningRaised.TYPE}', 'version', {WarningRaised.VERSION},
                       'source', CAST(:service AS text), 'subject', e.person, 'time', now(), 'correlation_id', CAST(:cid AS text),
                       'data', json_build_object(
                           'warning_id', e.id, 'rule', e.rule, 'kind', e.kind, 'level', e.level,
                           'person_id', e.person, 'region_code', e.region_code, 'due_on', e.due_on,
                           'due_provisional', e.due_provisional, 'raised_at', e.raised_at,
                           'source_type', e.source_type))::text, 'UTF8'),
                   now(), 0
            FROM (SELECT gen_random_uuid() AS eid, warnings.*, coalesce(n.number, warnings.person_id) AS person FROM warnings {vault} WHERE {compiled}
                  ORDER BY warnings.id) AS e
            ORDER BY e.id"""
        died = f"""
            INSERT INTO outbox (event_id, topic, key, type, payload, created_at, attempts)
            SELECT e.eid::text, 'monitoring.person', e.person, '{PersonDied.TYPE}',
                   convert_to(json_build_object(
                       'id', e.eid::text, 'type', '{PersonDied.TYPE}', 'version', {PersonDied.VERSION},
                       'source', CAST(:service AS text), 'subject', e.person, 'time', now(), 'correlation_id', CAST(:cid AS text),
                       'data', json_build_object(
                           'person_id', e.person, 'date_of_death', e.occurred_on, 'source', CAST(:source AS text),
                           'reported_at', e.raised_at))::text, 'UTF8'),
                   now(), 0
            FROM (SELECT gen_random_uuid() AS eid, warnings.*, coalesce(n.number, warnings.person_id) AS person FROM warnings {vault}
                  WHERE {compiled} AND warnings.kind = 'death' ORDER BY warnings.id) AS e
            ORDER BY e.id"""
        params = {"service": self.service, "cid": cid, "keys": list(numbers), "numbers": list(numbers.values())}
        await s.execute(sa.text(died), params | {"source": source})
        if warning_events:
            await s.execute(sa.text(raised), params)
