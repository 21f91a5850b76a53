"""The consumer's batch handlers (case.opened → clocks, decision.made → disbursements and
payroll) store exactly what the one-by-one handlers store: the same events through both paths,
into two fresh databases, give the same rows, outbox and audit entries. And a batch costs the
same number of statements whatever its length."""
from __future__ import annotations

import shutil
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from services.payments.clocks import PaymentClockService
from services.payments.models import disbursements, metadata, payment_clocks
from shared.audit import audit_log, audit_pending
from shared.db import UTCDateTime
from shared.events.eligibility import CaseOpened, DecisionMade
from shared.messaging.bus import IncomingMessage
from shared.messaging.tables import dead_letters, inbox, outbox
from tests.payments.helpers import case_opened, decision, deliver, died, make_payments, message
from tests.support import running

# Instants taken from the events: equal on both paths, so compared as they are.
EVENT_TIMES = frozenset({"accepted_at", "received_at", "decided_at", "reported_at"})
# Random by design (AES-GCM nonces, event ids, hash chains over timestamps).
RANDOM = {"person_vault": {"person_enc"}, "outbox": {"event_id"}, "audit_log": {"prev_hash", "hash"}}
TABLES = [*metadata.sorted_tables, inbox, outbox, dead_letters, audit_log, audit_pending]


@pytest.fixture(params=["sqlite", "postgres"])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path, _migrated_sqlite: Path) -> tuple[str, str]:
    """Two migrated, empty databases of one dialect."""
    if request.param == "sqlite":
        urls = []
        for name in ("batched", "one_by_one"):
            shutil.copyfile(_migrated_sqlite, tmp_path / f"{name}.db")
            urls.append(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        return urls[0], urls[1]
    return request.getfixturevalue("pg_url"), request.getfixturevalue("fresh_pg_url")  # migrated on start


def scenario() -> list[IncomingMessage]:
    """Deliveries in order: linshi and dibao interleaved, duplicates, late and missing case.opened."""
    on_holiday = datetime(2026, 9, 30, 18, tzinfo=timezone.utc)  # 1 October in Shanghai
    uncharted = datetime(2031, 3, 3, 2, tzinfo=timezone.utc)  # no official calendar: provisional
    a = decision(amount="1200.00", person_seq=1, received_at=on_holiday)
    b = decision(program="dibao", amount=None, monthly="800.00", person_seq=2)
    c = decision(amount="600.00", staged=["300.00", "300.00"], level="county", person_seq=3)
    d = decision(outcome="denied", amount=None, person_seq=4)
    e = decision(program="dibao", amount=None, monthly="650.00", person_seq=5, exit_months=3, outcome="gradual_exit")
    f = decision(amount="900.00", person_seq=9)  # reported dead before the decision
    g = decision(amount=None, person_seq=6)  # nothing to pay
    h = decision(amount="450.00", person_seq=7, received_at=uncharted, pay_first=True)
    a_again = a.model_copy(update={"decision_id": str(uuid.uuid4()), "outcome": "denied", "one_time_amount": None})
    b_stop = b.model_copy(update={"decision_id": str(uuid.uuid4()), "outcome": "denied", "monthly_amount": None})
    c_msg = message(c)
    return [
        message(died(9, date(2026, 10, 1)), source="monitoring"),
        message(case_opened(a)), message(case_opened(b)),
        message(case_opened(a)),  # the same case under a second event id
        message(a), message(b), c_msg,
        c_msg,  # the same event twice
        message(a),  # the same decision under a second event id
        message(d), message(e), message(f), message(g), message(h),
        message(case_opened(c)), message(case_opened(h)),  # after their decisions
        message(a_again), message(b_stop), message(case_opened(e)),
    ]


def comparable(table: sa.Table, row: sa.RowMapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        value = row[column.name]
        if column.name in RANDOM.get(table.name, ()):
            continue
        if column.primary_key and isinstance(column.type, sa.Integer):
            continue  # sequence numbers
        if isinstance(column.type, UTCDateTime) and column.name not in EVENT_TIMES:
            value = None if value is None else "<set>"  # when it ran, not what it stored
        elif table is outbox and column.name == "payload":
            value = {k: v for k, v in orjson.loads(value).items() if k not in ("id", "time")}
        out[column.name] = value
    return out


async def snapshot(app: Any) -> dict[str, list[dict[str, Any]]]:
    async with app.state.runtime.session_factory() as s:
        return {t.name: sorted((comparable(t, r) for r in (await s.execute(sa.select(t))).mappings()), key=repr)
                for t in TABLES}


async def test_batch_handlers_store_what_one_by_one_stores(two_databases: tuple[str, str]) -> None:
    msgs = scenario()
    batched, one_by_one = make_payments(two_databases[0]), make_payments(two_databases[1])
    async with running(batched), running(one_by_one):
        consumer = batched.state.runtime.consumers[0]
        assert set(consumer.batch_handlers) == {CaseOpened.TYPE, DecisionMade.TYPE}
        one_at_a_time: list[str] = []
        for type_ in consumer.batch_handlers:  # a failed batch is retried event by event: that must not happen
            async def recorded(tx: Any, env: Any, data: Any, _real: Any = consumer.handlers[type_]) -> None:
                one_at_a_time.append(env.type)
                await _real(tx, env, data)
            consumer.handlers[type_] = recorded
        await consumer.handle_batch(msgs[:9])
        await consumer.handle_batch([msgs[4], *msgs[9:]])  # a redelivered event in the next batch
        assert one_at_a_time == []
        for msg in [*msgs[:9], msgs[4], *msgs[9:]]:
            await one_by_one.state.runtime.consumers[0].handle(msg)
        got, want = await snapshot(batched), await snapshot(one_by_one)
    assert got == want
    # and the scenario did what it says
    assert len(want["payment_clocks"]) == 8 and len(want["disbursements"]) == 4
    assert len(want["entitlements"]) == 2 and want["dead_letters"] == []
    assert len(want["inbox"]) == len(msgs) - 1  # the event delivered twice counts once
    clocks = {r["case_id"]: r for r in want["payment_clocks"]}
    assert {r["closed_reason"] for r in clocks.values()} == {None, "denied", "nothing_to_pay"}
    assert sum(r["pay_by_provisional"] for r in clocks.values()) == 1
    assert {p["status"] for p in want["payments"] if p["kind"] == "linshi"} == {"unsigned", "suspended"}


async def test_a_batch_costs_the_same_statements_whatever_its_length(sqlite_url: str) -> None:
    app = make_payments(sqlite_url)

    def run_of(n: int, first: int) -> list[IncomingMessage]:
        ds = [decision(amount="100.00", person_seq=first + i, level="township" if i % 2 else "county")
              for i in range(n)]
        return [message(case_opened(d)) for d in ds] + [message(d) for d in ds]

    async with running(app):
        consumer = app.state.runtime.consumers[0]
        statements: list[str] = []

        def count(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
            if "outbox" not in sql and "audit_" not in sql:  # the relay's and the sealer's polls
                statements.append(sql)

        engine = app.state.runtime.engine.sync_engine
        sa.event.listen(engine, "before_cursor_execute", count)
        costs = []
        for n, first in ((3, 100), (30, 200)):
            statements.clear()
            await consumer.handle_batch(run_of(n, first))
            costs.append(len(statements))
        sa.event.remove(engine, "before_cursor_execute", count)
    assert costs[0] == costs[1], costs
    assert consumer.stats.handled == 66


async def test_a_clock_started_meanwhile_is_read_back(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision finds no clock, but a concurrent transaction starts one before the decision's
    insert: the disbursement takes that clock's pay-by date, not the one the decision would give."""
    d = decision(received_at=datetime(2026, 11, 2, 2, tzinfo=timezone.utc))
    opened = case_opened(d).model_copy(update={"received_at": datetime(2026, 10, 12, 2, tzinfo=timezone.utc)})
    app = make_payments(database_url)
    async with running(app):
        await deliver(app, opened)
        look_ups: list[list[str]] = []
        real = PaymentClockService._pay_by_of

        async def blind_first(tx: Any, case_ids: list[str]) -> Any:
            look_ups.append(case_ids)
            return {} if len(look_ups) == 1 else await real(tx, case_ids)

        monkeypatch.setattr(PaymentClockService, "_pay_by_of", staticmethod(blind_first))
        await deliver(app, d)
        async with app.state.runtime.session_factory() as s:
            clock = (await s.execute(sa.select(payment_clocks))).mappings().one()
            paid_by = (await s.execute(sa.select(disbursements.c.pay_by))).scalar_one()
    assert look_ups == [[d.case_id], [d.case_id]]
    assert clock["accepted_at"] == opened.received_at and paid_by == clock["pay_by"] == date(2026, 10, 19)
