"""P4 figures of a township reserve fund, pure.

资金趴窝 (idle money): money flows into the reserve in lots (a pre-allocation, a
replenishment, a payout returned by the bank) and leaves first-in first-out through payouts.
What is left of lots older than ``idle_days`` is idle; ``since`` is the day of the oldest one.

以拨代支 (an allocation booked as spending): a reimbursement report (报账) states the
spending of a period; the payouts the ledger actually shows for that period back it. Whatever
an approved report claims beyond its backing was booked as spent with no payouts behind it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class Movement:
    on: date
    change_fen: int  # + into the reserve, − out of it


@dataclass(frozen=True, slots=True)
class Idle:
    amount_fen: int
    since: date | None


def idle_funds(movements: Iterable[Movement], *, today: date, idle_days: int) -> Idle:
    lots: deque[list[object]] = deque()  # [day, remaining fen]
    for m in sorted(movements, key=lambda m: m.on):
        if m.change_fen > 0:
            lots.append([m.on, m.change_fen])
            continue
        out = -m.change_fen
        while out > 0 and lots:
            take = min(out, lots[0][1])  # type: ignore[type-var]
            lots[0][1] -= take  # type: ignore[operator]
            out -= take
            if lots[0][1] == 0:
                lots.popleft()
    cutoff = today - timedelta(days=idle_days)
    old = [(d, fen) for d, fen in lots if d <= cutoff]  # type: ignore[operator]
    if not old:
        return Idle(0, None)
    return Idle(sum(fen for _, fen in old), min(d for d, _ in old))  # type: ignore[arg-type,misc]


def unbacked(claimed_fen: int, backed_fen: int) -> int:
    """What a report claims beyond the payouts behind it."""
    return max(0, claimed_fen - backed_fen)


def periods_overlap(a_from: date, a_to: date, b_from: date, b_to: date) -> bool:
    return a_from <= b_to and b_from <= a_to
