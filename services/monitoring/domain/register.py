"""M1/M5: how eligibility's decisions move people between the seven categories (pure)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from services.monitoring.domain.categories import PAID_OUTCOMES, PROGRAM_CATEGORY


@dataclass(frozen=True)
class Change:
    person_id: str
    category: str
    action: str  # enter | leave
    on: date
    reason: str


def marginal_evidence(decision: Any, default_multiplier: Decimal) -> bool:
    """M5: a denied 低保 applicant whose per-capita income is below the marginal line
    (multiplier × standard, D5's 1.5 by default) is 低保边缘 and kept on file.

    Uses ``per_capita_income`` with ``marginal_line`` (or ``standard`` × multiplier) when the
    decision carries them; otherwise a reason tagged ``M5`` (eligibility's explanation that the
    household is in the marginal band)."""
    pci = getattr(decision, "per_capita_income", None)
    line = getattr(decision, "marginal_line", None)
    standard = getattr(decision, "standard", None)
    if pci is not None and line is None and standard is not None:
        line = Decimal(standard) * default_multiplier
    if pci is not None and line is not None:
        return Decimal(pci) < Decimal(line)
    return any(str(r).strip().upper().startswith("M5") for r in (decision.reasons or []))


def decision_changes(decision: Any, marginal_multiplier: Decimal = Decimal("1.5")) -> list[Change]:
    """Register changes for one ``DecisionMade``.

    * a paid 低保 / 特困 outcome puts every covered person in ``dibao`` / ``tekun`` and ends
      their ``marginal`` status (now covered); a paid 临时救助 puts them in ``sudden_hardship``;
    * a denied 低保 decision in the marginal band puts the applicant in ``marginal`` (M5).
    """
    on = decision.effective_from
    category = PROGRAM_CATEGORY.get(decision.program)
    if decision.outcome in PAID_OUTCOMES and category:
        persons = list(dict.fromkeys(decision.covered_person_ids or [decision.applicant_person_id]))
        out = [Change(p, category, "enter", on, f"{decision.program}:{decision.outcome}") for p in persons]
        if category in ("dibao", "tekun"):
            out += [Change(p, "marginal", "leave", on, f"covered by {category}") for p in persons]
        return out
    if decision.outcome == "denied" and decision.program == "dibao" and marginal_evidence(decision, marginal_multiplier):
        return [Change(decision.applicant_person_id, "marginal", "enter", on, "dibao:denied in marginal band (M5)")]
    return []


def benefit_changes(change: Any) -> list[Change]:
    """``BenefitChanged`` with ``stop`` ends the program's category for the covered persons."""
    category = PROGRAM_CATEGORY.get(change.program)
    if change.change != "stop" or not category:
        return []
    persons = list(dict.fromkeys(change.covered_person_ids or [change.applicant_person_id]))
    return [Change(p, category, "leave", change.effective_from, f"{change.program} stopped: {change.reason}"[:200])
            for p in persons]
