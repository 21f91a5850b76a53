"""Re-evaluation of a current benefit: what changed, and the reason text (pure, stdlib only).

A benefit is ``active`` (paid normally) or ``exiting`` (in its 渐退 period, D5). Comparing the
stored benefit with a fresh assessment gives one of (``BenefitChanged.change``):

* ``stop`` — the household no longer qualifies (denied: D1/D4/D5, T1), or its D5 exit
  period ended and it still does not qualify;
* ``gradual_exit`` — an active benefit whose per-capita income rose above the standard but
  stays below marginal·standard: paid unchanged for ``gradual_exit_months`` (D5);
* ``raise`` / ``lower`` — the monthly amount changed (D2/D3, T2); an exiting benefit that
  qualifies again returns to regular cover (``raise`` also when the amount stays equal);
* ``None`` — nothing changed: no event, no write.

Every reason cites the rule codes the new assessment used.
"""
from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable

__all__ = ["classify", "add_months", "exit_until", "rule_codes", "reason_text", "marginal_band",
           "fen", "yuan"]

_ORDER = ("D1", "D2", "D3", "D4", "D5", "D6", "T1", "T2", "L1", "L2", "L3", "L4", "L5")
_RANK = {c: i for i, c in enumerate(_ORDER)}
_CHANGE_ZH = {"raise": "提高", "lower": "降低", "gradual_exit": "进入渐退期", "stop": "停发"}
_PROGRAM_ZH = {"dibao": "低保金", "tekun": "特困供养金"}


def fen(amount: Decimal) -> int:
    """Whole fen of an amount already rounded to 0.01 (the engine's outputs are)."""
    return int(amount.scaleb(2))


def yuan(f: int) -> str:
    sign = "-" if f < 0 else ""
    f = abs(f)
    return f"{sign}{f // 100}.{f % 100:02d}"


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def exit_until(effective_from: date, months: int) -> date:
    """Last day of a D5 exit period of ``months`` months starting on ``effective_from``."""
    return add_months(effective_from, months) - timedelta(days=1)


def classify(old_status: str, old_fen: int, outcome: str, new_fen: int, *,
             as_of: date | None = None, old_exit_until: date | None = None) -> str | None:
    if outcome == "denied":
        return "stop"
    if outcome == "gradual_exit":
        if old_status != "exiting":
            return "gradual_exit"
        if old_exit_until is not None and as_of is not None and as_of > old_exit_until:
            return "stop"            # D5: the exit period is over
        return None
    if new_fen > old_fen:
        return "raise"
    if new_fen < old_fen:
        return "lower"
    if old_status == "exiting":
        return "raise"               # qualifies again: the exit is cancelled
    return None


_CODES_CACHE: dict[tuple[str, ...], str] = {}


def rule_codes(codes: Iterable[str]) -> str:
    """``D1、D2、D3`` in rulebook order (sub-codes like ``D1-assets`` fold into ``D1``)."""
    key = tuple(codes)
    hit = _CODES_CACHE.get(key)
    if hit is None:
        seen = {c.split("-", 1)[0] for c in key if c}
        hit = "、".join(sorted(seen, key=lambda c: (_RANK.get(c, 99), c)))
        if len(_CODES_CACHE) < 10_000:
            _CODES_CACHE[key] = hit
    return hit


def reason_text(change: str, program: str, old_fen: int, new_fen: int, codes: str, trigger: str,
                until: date | None = None) -> str:
    what = _PROGRAM_ZH.get(program, "保障金")
    if change == "stop":
        return f"{trigger}：经重新核定不再符合条件，{what}停发（原 {yuan(old_fen)} 元/月）（{codes}）"
    if change == "gradual_exit":
        return (f"{trigger}：家庭月人均收入超过低保标准但低于渐退线，{what} {yuan(old_fen)} 元/月"
                f"继续发放至 {until.isoformat() if until else '渐退期满'}（{codes}）")
    return f"{trigger}：{what}{_CHANGE_ZH[change]}，{yuan(old_fen)} → {yuan(new_fen)} 元/月（{codes}）"


def marginal_band(*, incomes: Iterable[Decimal], rigid: Decimal, employment: Decimal, standard: Decimal,
                  multiplier: Decimal) -> bool:
    """M5 / D4: per-capita income at or above the standard and below multiplier × standard
    (exact: compared as totals, never divided)."""
    inc = list(incomes)
    n = len(inc)
    if n == 0:
        return False
    net = sum(inc, Decimal(0)) - rigid - employment
    if net < 0:
        net = Decimal(0)
    return standard * n <= net < multiplier * standard * n
