"""经济状况核对 (means-test verification): which partner sources a case needs, and how their
answers become the household the engine assesses (pure, stdlib only).

Sources (SX 二(四)2; POLICY.md M2 "for means tests: hukou, social insurance, vehicles, real
estate, housing fund, banks"):

| source | department | speaks to |
| --- | --- | --- |
| ``hukou`` | 公安户籍 | household registration (recorded; composition changes are for the officer) |
| ``social_insurance`` | 人社 | pensions, unemployment benefits → monthly incomes |
| ``vehicles`` | 公安交管 | vehicles → assets |
| ``real_estate`` | 自然资源/不动产登记 | property → assets |
| ``housing_fund`` | 住房公积金中心 | contributions (wage income) and balances → incomes, assets |
| ``bank_deposits`` | 金融机构 | deposits and securities → assets |

Every answer is a *fact*: ``assets_within_limits`` (true / false / null = "this source does not
speak to assets") and ``monthly_incomes`` (person → yuan per month found by that source). The
latest fact per source counts (history is kept, never overwritten). Combination (D1):

* a member's monthly income is the larger of the declared figure and the sum of the verified
  figures of the sources (different sources report different kinds of income; the applicant's
  own declaration is a floor because informal income is invisible to partners);
* assets are within the limits unless the household declared otherwise or any source found
  otherwise (necessary living property is exempt — the partner applies the local limits);
* a fact naming a person outside the household is ignored for the amount and reported in the
  notes, for the officer (a hukou answer can reveal undeclared members).

临时救助 asks no partner: its amount depends on the kind of hardship and the urban standard
only (L3), and the township may pay first and complete the file afterwards (先行救助, L4).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping

from .inputs import compact_household

__all__ = ["SOURCES", "SOURCE_LABELS", "required_sources", "Fact", "MeansTest", "latest_by_source",
           "apply_facts"]

SOURCES: tuple[str, ...] = ("hukou", "social_insurance", "vehicles", "real_estate", "housing_fund", "bank_deposits")
SOURCE_LABELS = {
    "hukou": "户籍（公安）", "social_insurance": "社会保险（人社）", "vehicles": "车辆（公安交管）",
    "real_estate": "不动产登记", "housing_fund": "住房公积金", "bank_deposits": "银行存款（金融机构）",
}
_ZERO = Decimal("0.00")


def required_sources(program: str) -> tuple[str, ...]:
    """低保 and 特困 need every source (D1, T1); 临时救助 none (L3, L4 先行救助)."""
    return SOURCES if program in ("dibao", "tekun") else ()


@dataclass(frozen=True)
class Fact:
    source: str
    assets_within_limits: bool | None
    monthly_incomes: Mapping[str, Decimal] = field(default_factory=dict)
    origin: str = "partner"
    seq: int = 0


@dataclass(frozen=True)
class MeansTest:
    household: dict[str, Any]              # the stored (compact) household the engine assesses
    assets_within_limits: bool
    incomes: dict[str, Decimal]            # person → income used
    notes: list[str]


def latest_by_source(facts: Iterable[Fact]) -> dict[str, Fact]:
    out: dict[str, Fact] = {}
    for f in sorted(facts, key=lambda f: f.seq):
        out[f.source] = f
    return out


def _d(v: Any) -> Decimal:
    if v in (None, ""):
        return _ZERO
    if isinstance(v, float):
        raise TypeError("money must not be a float")
    return v if isinstance(v, Decimal) else Decimal(str(v))


def apply_facts(household: Mapping[str, Any], facts: Iterable[Fact]) -> MeansTest:
    """The household to assess, given the application's household (as intake sent it or as
    stored) and the facts recorded for the case. Notes explain every change (D1)."""
    latest = latest_by_source(facts)
    members = list(household["members"])
    index = {m["person_id"]: i for i, m in enumerate(members, 1)}
    notes: list[str] = []

    verified: dict[str, Decimal] = {}
    found_by: dict[str, list[str]] = {}
    outsiders: set[str] = set()
    for source, fact in latest.items():
        for pid, amount in fact.monthly_incomes.items():
            if pid not in index:
                outsiders.add(source)
                continue
            verified[pid] = verified.get(pid, _ZERO) + _d(amount)
            found_by.setdefault(pid, []).append(SOURCE_LABELS.get(source, source))
    incomes: dict[str, Decimal] = {}
    for m in members:
        pid = m["person_id"]
        declared = _d(m.get("monthly_income"))
        used = declared
        if pid in verified and verified[pid] > declared:
            used = verified[pid]
            notes.append(f"成员{index[pid]} 月收入按核对结果计 {used:.2f} 元（申报 {declared:.2f} 元；"
                         f"{'、'.join(found_by[pid])}）（D1）")
        incomes[pid] = used
    for source in sorted(outsiders):
        notes.append(f"{SOURCE_LABELS.get(source, source)}核对结果含申请家庭以外人员，未计入；请核实家庭成员（D1）")

    declared_assets = household.get("assets_within_limits")
    failing = [SOURCE_LABELS.get(s, s) for s, f in latest.items() if f.assets_within_limits is False]
    if declared_assets is False:
        assets_ok = False
        notes.append("申请人申报家庭财产超出当地低保财产限额（D1）")
    elif failing:
        assets_ok = False
        notes.append(f"家庭财产超出当地限额：{'、'.join(sorted(failing))}核对结果（生活必须财产已豁免）（D1）")
    else:
        assets_ok = True
        checked = [SOURCE_LABELS.get(s, s) for s, f in latest.items() if f.assets_within_limits is True]
        if checked:
            notes.append(f"家庭财产在当地限额内（{'、'.join(sorted(checked))}核对；生活必须财产豁免）（D1）")
    compact = compact_household(household, assets_within_limits=assets_ok, incomes=incomes)
    return MeansTest(household=compact, assets_within_limits=assets_ok, incomes=incomes, notes=notes)
