"""The ledger's storage: post a balanced transaction atomically, read balances and statements.

A posting locks the balance rows it changes (in account order), lets the pure domain check
the movement (balanced; no floored account below zero), then appends the transaction and its
entries and moves the balances, all inside the caller's transaction. Nothing is updated or
deleted afterwards (the tables refuse it): a correction is another posting.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import county_of, is_region_code
from shared.db import insert_ignore

from services.payments.domain import ledger as dl
from services.payments.models import ledger_accounts, ledger_entries, ledger_transactions
from services.payments.storage import lock_rows, utcnow


@dataclass(frozen=True)
class Posted:
    transaction_id: int
    balances: dict[str, int]


def _region_of(account: str) -> str | None:
    key = dl.key_of(account)
    return key if is_region_code(key) else None


async def ensure_accounts(session: AsyncSession, accounts: Sequence[str]) -> None:
    now = utcnow()
    for code in sorted(set(accounts)):
        if dl.is_tracked(code):
            await insert_ignore(session, ledger_accounts, {
                "code": code, "kind": dl.kind_of(code), "region_code": _region_of(code),
                "balance_fen": 0, "floor_zero": dl.is_floored(code), "created_at": now})


async def lock_balances(session: AsyncSession, accounts: Sequence[str]) -> dict[str, int]:
    tracked = sorted({a for a in accounts if dl.is_tracked(a)})
    await ensure_accounts(session, tracked)
    rows = await lock_rows(session, ledger_accounts, ledger_accounts.c.code, tracked)
    return {r["code"]: int(r["balance_fen"]) for r in rows}


async def post(session: AsyncSession, lines: Sequence[dl.Line], *, kind: str, actor: str,
               region_code: str | None = None, ref_type: str | None = None, ref_id: str | None = None,
               memo: str | None = None, reverses_id: int | None = None,
               at: datetime | None = None) -> Posted:
    """Append one balanced transaction. Raises :class:`dl.Overdraft` or
    :class:`dl.UnbalancedTransaction` before writing anything."""
    dl.validate(lines)
    changes = dl.net_changes(lines)
    balances = await lock_balances(session, list(changes))
    after = dl.apply(balances, lines, floored=dl.is_floored)  # the domain decides
    for account in sorted(changes):
        change = changes[account]
        if not dl.is_tracked(account) or change == 0:
            continue
        guard = ledger_accounts.c.code == account
        if dl.is_floored(account) and change < 0:
            guard = sa.and_(guard, ledger_accounts.c.balance_fen + change >= 0)
        result = await session.execute(ledger_accounts.update().where(guard)
                                       .values(balance_fen=ledger_accounts.c.balance_fen + change))
        if result.rowcount != 1:  # pragma: no cover - the lock above makes this unreachable
            raise dl.Overdraft(account, balances.get(account, 0), change)
    tx_id = await session.scalar(ledger_transactions.insert().values(
        kind=kind, region_code=region_code, ref_type=ref_type, ref_id=ref_id, reverses_id=reverses_id,
        memo=memo, actor=actor, created_at=at or utcnow()).returning(ledger_transactions.c.id))
    await session.execute(ledger_entries.insert(), [
        {"transaction_id": tx_id, "account": line.account, "side": line.side, "amount_fen": line.amount_fen,
         "payment_id": line.payment_id} for line in lines])
    return Posted(int(tx_id), {a: after[a] for a in after if dl.is_tracked(a)})


async def try_post(session: AsyncSession, lines: Sequence[dl.Line], **kw: Any) -> Posted | None:
    """Like :func:`post`, but None (nothing written) when a floored account lacks the money."""
    try:
        return await post(session, lines, **kw)
    except dl.Overdraft:
        return None


async def reverse(session: AsyncSession, transaction_id: int, *, actor: str, memo: str) -> Posted:
    """The correcting posting of an earlier transaction (its lines on the other side)."""
    original = (await session.execute(sa.select(ledger_transactions).where(
        ledger_transactions.c.id == transaction_id))).mappings().one()
    rows = (await session.execute(sa.select(ledger_entries).where(
        ledger_entries.c.transaction_id == transaction_id).order_by(ledger_entries.c.id))).mappings().all()
    lines = dl.reverse(dl.Line(r["account"], r["side"], int(r["amount_fen"]), r["payment_id"]) for r in rows)
    return await post(session, lines, kind=f"reversal:{original['kind']}"[:32], actor=actor,
                      region_code=original["region_code"], ref_type=original["ref_type"],
                      ref_id=original["ref_id"], memo=memo, reverses_id=transaction_id)


# --- reading ---------------------------------------------------------------------------------

async def balance(session: AsyncSession, account: str) -> int:
    """Debits − credits: the balance row for pooled accounts, the entries for the sub-ledger."""
    if dl.is_tracked(account):
        value = await session.scalar(sa.select(ledger_accounts.c.balance_fen).where(ledger_accounts.c.code == account))
        return int(value or 0)
    return await sum_of_entries(session, account)


async def sum_of_entries(session: AsyncSession, account: str) -> int:
    signed = sa.case((ledger_entries.c.side == dl.DEBIT, ledger_entries.c.amount_fen),
                     else_=-ledger_entries.c.amount_fen)
    value = await session.scalar(sa.select(sa.func.coalesce(sa.func.sum(signed), 0))
                                 .where(ledger_entries.c.account == account))
    return int(value or 0)


async def statement(session: AsyncSession, account: str, *, limit: int = 200) -> list[dict[str, Any]]:
    rows = (await session.execute(
        sa.select(ledger_entries.c.id, ledger_entries.c.side, ledger_entries.c.amount_fen,
                  ledger_entries.c.payment_id, ledger_transactions.c.id.label("transaction_id"),
                  ledger_transactions.c.kind, ledger_transactions.c.memo, ledger_transactions.c.ref_type,
                  ledger_transactions.c.ref_id, ledger_transactions.c.created_at, ledger_transactions.c.actor)
        .join(ledger_transactions, ledger_transactions.c.id == ledger_entries.c.transaction_id)
        .where(ledger_entries.c.account == account)
        .order_by(ledger_entries.c.id.desc()).limit(limit))).mappings().all()
    return [dict(r) for r in rows]


def county_account_for(region_code: str) -> str:
    return dl.county_budget(county_of(region_code))


async def verify(session: AsyncSession) -> dict[str, Any]:
    """Recompute the invariants from the entries: every transaction balanced, every balance row
    equal to the sum of its entries, no floored account below zero."""
    signed = sa.case((ledger_entries.c.side == dl.DEBIT, ledger_entries.c.amount_fen), else_=-ledger_entries.c.amount_fen)
    unbalanced = [int(t) for t in (await session.execute(
        sa.select(ledger_entries.c.transaction_id).group_by(ledger_entries.c.transaction_id)
        .having(sa.func.sum(signed) != 0))).scalars()]
    sums = dict((await session.execute(
        sa.select(ledger_entries.c.account, sa.func.sum(signed)).where(ledger_entries.c.account.in_(
            sa.select(ledger_accounts.c.code))).group_by(ledger_entries.c.account))).all())
    rows = (await session.execute(sa.select(ledger_accounts))).mappings().all()
    drift = [{"account": r["code"], "balance_fen": int(r["balance_fen"]), "entries_fen": int(sums.get(r["code"], 0))}
             for r in rows if int(r["balance_fen"]) != int(sums.get(r["code"], 0))]
    negative = [r["code"] for r in rows if r["floor_zero"] and int(r["balance_fen"]) < 0]
    return {"ok": not (unbalanced or drift or negative), "accounts": len(rows),
            "unbalanced_transactions": unbalanced, "balance_drift": drift, "negative_floored": negative}
