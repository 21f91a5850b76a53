"""Ledger invariants, property-tested: every movement is a balanced transaction; a balance is the
sum of its entries; a floored account (county budget, township reserve: P1, P4) never goes
negative; corrections are reversing transactions and the ledger refuses edits."""
from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from services.payments import ledger
from services.payments.domain import ledger as dl
from services.payments.domain.reserve import Movement, idle_funds
from services.payments.models import ledger_accounts, ledger_entries, ledger_transactions, metadata
from shared.db import make_session_factory

COUNTY = "522701000000"
ACCOUNTS = [dl.appropriation(COUNTY), dl.county_budget(COUNTY), dl.reserve("522701001000"),
            dl.reserve("522701002000"), dl.payable("522701195003011234"), dl.bank_clearing(COUNTY)]

amounts = st.integers(min_value=1, max_value=10**9)
lines = st.lists(st.builds(dl.Line, st.sampled_from(ACCOUNTS), st.sampled_from([dl.DEBIT, dl.CREDIT]), amounts),
                 min_size=0, max_size=6)
transfers = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS), st.integers(1, 5_000_00))


# --- pure domain ---------------------------------------------------------------------------------

@given(lines)
def test_a_transaction_is_accepted_exactly_when_debits_equal_credits(ls: list[dl.Line]) -> None:
    debits = sum(x.amount_fen for x in ls if x.side == dl.DEBIT)
    credits = sum(x.amount_fen for x in ls if x.side == dl.CREDIT)
    if len(ls) >= 2 and debits == credits:
        dl.validate(ls)
        assert sum(dl.net_changes(ls).values()) == 0
    else:
        with pytest.raises(dl.UnbalancedTransaction):
            dl.validate(ls)


@given(st.lists(transfers, max_size=40))
def test_balances_conserve_money_and_floored_accounts_never_go_negative(moves) -> None:
    """P1/P4: whatever the order of movements, a reserve or budget never goes below zero; a
    refused movement changes nothing; money is neither created nor destroyed."""
    balances: dict[str, int] = {}
    for src, dst, fen in moves:
        if src == dst:
            continue
        tx = [dl.debit(dst, fen), dl.credit(src, fen)]
        try:
            balances.update(dl.apply(balances, tx))
        except dl.Overdraft as exc:
            assert dl.is_floored(exc.account) and balances.get(exc.account, 0) < fen
        assert all(v >= 0 for a, v in balances.items() if dl.is_floored(a))
        assert sum(balances.values()) == 0


@given(st.lists(st.tuples(st.sampled_from(ACCOUNTS[1:]), amounts), min_size=1, max_size=5))
def test_a_reversal_cancels_its_transaction(parts) -> None:
    total = sum(f for _, f in parts)
    tx = [dl.debit(a, f) for a, f in parts] + [dl.credit(dl.appropriation(COUNTY), total)]
    both = dl.net_changes(list(tx) + list(dl.reverse(tx)))
    assert all(v == 0 for v in both.values())


def test_lines_refuse_nonsense() -> None:
    for bad in (lambda: dl.Line("reserve:1", "D", 0), lambda: dl.Line("reserve:1", "X", 5),
                lambda: dl.Line("reserve:1", "D", True), lambda: dl.Line("nowhere:1", "D", 5),
                lambda: dl.Line("reserve:1", "D", 1.5)):  # type: ignore[arg-type]
        with pytest.raises(dl.LedgerError):
            bad()


@given(st.lists(st.tuples(st.integers(0, 400), st.integers(-5000, 5000)), max_size=30), st.integers(1, 200))
def test_idle_funds_never_exceed_the_balance_or_the_old_inflows(moves, idle_days) -> None:
    """P4 资金趴窝 (FIFO): idle money is part of what is left, and only from old enough lots."""
    from datetime import date, timedelta
    start, today = date(2026, 1, 1), date(2027, 2, 5)
    movements, balance = [], 0
    for day, change in sorted(moves):
        if change < 0 and balance + change < 0:
            change = -balance  # the ledger never lets a reserve go negative
        if change:
            movements.append(Movement(start + timedelta(days=day), change))
            balance += change
    idle = idle_funds(movements, today=today, idle_days=idle_days)
    old_in = sum(m.change_fen for m in movements if m.change_fen > 0 and m.on <= today - timedelta(days=idle_days))
    assert 0 <= idle.amount_fen <= min(balance, old_in)
    assert (idle.amount_fen == 0) == (idle.since is None)


# --- the ledger on a real database ---------------------------------------------------------------

async def _fresh(url: str, *, create: bool = True):
    """An engine on ``url``; ``create``: (re)build just the ledger tables there first."""
    engine = create_async_engine(url)
    if create:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: metadata.drop_all(c, tables=[ledger_entries, ledger_transactions,
                                                                       ledger_accounts]))
            await conn.run_sync(lambda c: metadata.create_all(c, tables=[ledger_accounts, ledger_transactions,
                                                                         ledger_entries]))
    return engine, make_session_factory(engine)


async def _check_invariants(factory) -> dict[str, int]:
    async with factory() as s:
        rows = (await s.execute(sa.select(ledger_entries.c.transaction_id, ledger_entries.c.account,
                                          ledger_entries.c.side, ledger_entries.c.amount_fen))).all()
        kept = dict((await s.execute(sa.select(ledger_accounts.c.code, ledger_accounts.c.balance_fen))).all())
    per_tx: dict[int, int] = defaultdict(int)
    per_account: dict[str, int] = defaultdict(int)
    for tx, account, side, fen in rows:
        signed = fen if side == dl.DEBIT else -fen
        per_tx[tx] += signed
        per_account[account] += signed
    assert all(v == 0 for v in per_tx.values()), "every transaction is balanced"
    for code, bal in kept.items():
        assert bal == per_account.get(code, 0), f"balance row of {code} = sum of its entries"
        if dl.is_floored(code):
            assert bal >= 0, f"{code} never negative"
    return kept


async def _scenario(url: str, moves) -> None:
    engine, factory = await _fresh(url)
    try:
        expected: dict[str, int] = {}
        for src, dst, fen in moves:
            if src == dst:
                continue
            tx = [dl.debit(dst, fen), dl.credit(src, fen)]
            async with factory() as s, s.begin():
                before_tx = await s.scalar(sa.select(sa.func.count()).select_from(ledger_transactions))
                posted = await ledger.try_post(s, tx, kind="test", actor="hypothesis")
                if posted is None:
                    assert await s.scalar(sa.select(sa.func.count()).select_from(ledger_transactions)) == before_tx
            if posted is not None:
                expected.update(dl.apply(expected, tx))
        kept = await _check_invariants(factory)
        for account, value in expected.items():
            if dl.is_tracked(account):
                assert kept[account] == value
        async with factory() as s:
            for account, value in expected.items():
                assert await ledger.balance(s, account) == value
    finally:
        await engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(transfers, min_size=1, max_size=25))
def test_sqlite_ledger_balance_rows_equal_entries_and_floors_hold(tmp_path, moves) -> None:
    asyncio.run(_scenario(f"sqlite+aiosqlite:///{tmp_path}/ledger-{uuid.uuid4().hex}.db", moves))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(transfers, min_size=1, max_size=20))
def test_postgres_ledger_balance_rows_equal_entries_and_floors_hold(fresh_pg_url, moves) -> None:
    asyncio.run(_scenario(fresh_pg_url, moves))


async def test_concurrent_withdrawals_never_overdraw_a_reserve(database_url: str) -> None:
    """Many movements racing on one reserve: the balance row is locked, so exactly the ones that
    fit succeed and the reserve ends at or above zero (P1/P4)."""
    engine, factory = await _fresh(database_url, create=False)  # migrated and empty
    reserve, budget = dl.reserve("522701001000"), dl.county_budget(COUNTY)
    async with factory() as s, s.begin():
        await ledger.post(s, [dl.debit(budget, 1000_00), dl.credit(dl.appropriation(COUNTY), 1000_00)],
                          kind="t", actor="t")
        await ledger.post(s, [dl.debit(reserve, 1000_00), dl.credit(budget, 1000_00)], kind="t", actor="t")

    async def withdraw(i: int) -> bool:
        async with factory() as s, s.begin():
            return await ledger.try_post(s, [dl.debit(dl.payable(f"52270119500301{i:04d}"), 300_00),
                                             dl.credit(reserve, 300_00)], kind="t", actor="t") is not None

    results = await asyncio.gather(*(withdraw(i) for i in range(8)))
    assert sum(results) == 3
    kept = await _check_invariants(factory)
    assert kept[reserve] == 100_00
    await engine.dispose()


async def test_the_ledger_refuses_edits_and_deletes(database_url: str) -> None:
    """Append-only: the migration's triggers refuse UPDATE/DELETE; corrections are reversals."""
    from tests.payments.helpers import fund_county, make_payments
    from tests.support import running
    app = make_payments(database_url)
    async with running(app) as c:
        await fund_county(c, "100.00")
        factory = app.state.runtime.session_factory
        for stmt in (ledger_entries.update().values(amount_fen=1), ledger_entries.delete(),
                     ledger_transactions.delete()):
            with pytest.raises(Exception, match="append-only"):
                async with factory() as s, s.begin():
                    await s.execute(stmt)
        async with factory() as s, s.begin():
            tx_id = await s.scalar(sa.select(sa.func.min(ledger_transactions.c.id)))
            posted = await ledger.reverse(s, int(tx_id), actor="test", memo="booked twice")
        assert posted.balances[dl.county_budget("522701000000")] == 0
