"""The eligibility rule engine: ``assess(request, policy) -> Assessment``. Pure, stdlib only.

Implements ``POST /v1/assessments`` (API.md, FIXED) with the rule codes of POLICY.md.
Notation: S = the household's area standard, U = the urban standard, n = household size.

Arithmetic
    Exact ``Decimal`` throughout. Per-capita income is never divided out for a decision:
    ``pci < S`` is tested as ``net < S·n`` and the D2 base ``(S − pci)·n`` is computed as
    ``S·n − net`` (net = Σ income − rigid expenses − employment costs, floored at 0), so no
    division ever rounds a decision. Every money figure in the output is rounded to 0.01 yuan
    half up, and ``monthly_amount`` (or ``one_time_amount`` for linshi) is the sum of the
    rounded breakdown lines. The per-capita income quoted in texts is rounded for display only.

Outcomes
    dibao: approved > gradual_exit > single_person > denied (API.md). Assets outside the
    limits deny every outcome (API.md: "Assets outside limits → denied"). In single_person
    (D4) each covered member gets (S − own income, floored at 0) plus their own highest D3
    tier, the household's family flags still counting for tier 3. As API.md states them, the
    rules are not monotone in income at S: a household just below S gets the small gap, one
    just above gets full D4 cover for its severely ill/disabled members (tested, on purpose).
    tekun: approved when at least one member qualifies (T1), else denied; an able legal
    supporter is a household fact, so it denies everyone with one household-level reason.
    tekun ignores assets and current_benefit, linshi ignores incomes (API.md semantics).
    linshi: approved when the one-time amount is above 0.00, else denied.

Conventions for the output (chosen here; the API layer renders them unchanged)
    * ``eligible`` is true exactly when ``outcome != "denied"``.
    * dibao/tekun: ``monthly_amount`` is always a money string — "0.00" when denied —
      and ``one_time_amount`` is always null.
    * linshi: ``one_time_amount`` is always a money string — "0.00" when denied — and
      ``monthly_amount`` is always null (a one-time payment has no monthly amount).
    * denied: ``breakdown`` and ``covered_members`` are empty; ``reasons`` say why.
    * ``approval_level`` is always set: it names the authority that confirms the decision,
      positive or negative — dibao/tekun by D6 (``township`` if delegated, else ``county``),
      linshi by L4 from the one-time amount (so a 0.00 denial is a township decision).
    * ``exit_months`` is set only for gradual_exit.
    * ``policy_version`` is ``ResolvedPolicy.version_id`` (the nearest region's latest version
      in force; ``ResolvedPolicy.sources`` names the version of every single parameter).
    * every breakdown line and reason carries its rule code, also at the end of its text
      ("…（D2）"), and every reason its seed citation (:data:`SOURCES`).
    * texts never contain identity numbers; members are named by position ("成员2") and the
      structured ``person_id`` fields carry the id (the API layer masks them).

Ages
    Whole years on ``as_of``: the birthday counts on the day itself (turning 18 on ``as_of``
    means age 18, so no longer a minor). Someone born on 29 February has the birthday on
    1 March in common years.

Invalid input (unknown program/area/self_care, no members, a birth date after ``as_of``,
linshi without a usable ``hardship``) raises :class:`InvalidRequest` listing each field;
the API layer validates first and maps it to 422.

Speed: per-policy constants (tier amounts, marginal·S, care-fee amounts, text fragments)
are computed once and cached on the :class:`ResolvedPolicy` (``policy.cache``); the
per-household path does only Decimal additions/comparisons, one quantize per output figure
and short f-strings (bench/eligibility_engine.py). Arithmetic assumes the default decimal
context (28 digits), which is exact for any realistic yuan amount.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .policy import PolicyParams, ResolvedPolicy

__all__ = [
    "SOURCES", "Member", "Household", "Hardship", "AssessmentRequest", "BreakdownLine",
    "Reason", "Assessment", "InvalidRequest", "assess", "age_on",
]

_CENT = Decimal("0.01")
_HU = ROUND_HALF_UP
_ZERO = Decimal("0.00")

#: Seed citation per rule code (file + section, POLICY.md).
SOURCES: dict[str, str] = {
    "D1": "000_e289ce00f249d99f.txt 二(一)",
    "D1-assets": "001_3569ff067e28e058.txt 二(一)1",
    "D2": "000_e289ce00f249d99f.txt 二(一)",
    "D3": "000_e289ce00f249d99f.txt 二(一)",
    "D4": "003_dbf974436b87d268.txt 一(二)",
    "D5": "003_dbf974436b87d268.txt 一(二)",
    "D6": "001_3569ff067e28e058.txt 二(一)1",
    "T1": "001_3569ff067e28e058.txt 二(一)3",
    "T1-minor": "000_e289ce00f249d99f.txt 二(一)",
    "T2": "000_e289ce00f249d99f.txt 二(一)",
    "L1": "000_e289ce00f249d99f.txt 二(四)",
    "L2": "003_dbf974436b87d268.txt 二(四)",
    "L3": "000_e289ce00f249d99f.txt 二(四)",
    "L4": "000_e289ce00f249d99f.txt 二(四)",
}
_SRC_D1 = SOURCES["D1"]
_SRC_D1A = SOURCES["D1-assets"]
_SRC_D4 = SOURCES["D4"]
_SRC_D5 = SOURCES["D5"]
_SRC_D6 = SOURCES["D6"]
_SRC_T1 = SOURCES["T1"]
_SRC_T1M = SOURCES["T1-minor"]
_SRC_L1 = SOURCES["L1"]
_SRC_L2 = SOURCES["L2"]
_SRC_L3 = SOURCES["L3"]
_SRC_L4 = SOURCES["L4"]


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True, slots=True)
class Member:
    person_id: str
    birth_date: date
    monthly_income: Decimal = _ZERO
    disability_grade: int | None = None        # 1–4 (1–2 severe 重度)
    disability_kind: str | None = None         # physical|visual|hearing|speech|intellectual|mental|multiple
    serious_illness: bool = False
    in_school: bool = False
    labor_capacity: str = "full"               # full|partial|none
    self_care: str = "full"                    # full|partial|none


@dataclass(frozen=True, slots=True)
class Household:
    members: tuple[Member, ...]
    rigid_expenses_monthly: Decimal = _ZERO
    employment_costs_monthly: Decimal = _ZERO
    single_parent: bool = False
    only_child: bool = False
    pure_daughter: bool = False
    land_lost: bool = False
    assets_within_limits: bool = True
    has_able_legal_supporter: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.members, tuple):
            object.__setattr__(self, "members", tuple(self.members))


@dataclass(frozen=True, slots=True)
class Hardship:
    kind: str                                  # emergency|expense
    months: int                                # 1..6 requested (capped by linshi_max_months)
    expense_amount: Decimal | None = None      # required for expense


@dataclass(frozen=True, slots=True)
class AssessmentRequest:
    program: str                               # dibao|tekun|linshi
    area: str                                  # urban|rural
    as_of: date
    household: Household
    current_benefit_monthly: Decimal | None = None
    hardship: Hardship | None = None


class InvalidRequest(ValueError):
    """The request cannot be assessed; ``errors`` lists ``(field, message)``."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


# ----------------------------------------------------------------------------- outputs

@dataclass(slots=True)
class BreakdownLine:
    code: str
    person_id: str | None
    amount: Decimal
    text: str


@dataclass(slots=True)
class Reason:
    code: str
    text: str
    source: str


def _money(d: Decimal | None) -> str | None:
    return None if d is None else str(d.quantize(_CENT, _HU))


@dataclass(slots=True)
class Assessment:
    eligible: bool
    outcome: str                     # approved|single_person|gradual_exit|denied
    monthly_amount: Decimal | None
    one_time_amount: Decimal | None
    covered_members: list[str]
    approval_level: str              # township|county
    exit_months: int | None
    policy_version: str
    breakdown: list[BreakdownLine]
    reasons: list[Reason]

    def to_dict(self) -> dict[str, Any]:
        """The API.md 200 body: money as 2-place strings, field order as in API.md."""
        return {
            "eligible": self.eligible,
            "outcome": self.outcome,
            "monthly_amount": _money(self.monthly_amount),
            "one_time_amount": _money(self.one_time_amount),
            "covered_members": list(self.covered_members),
            "approval_level": self.approval_level,
            "exit_months": self.exit_months,
            "policy_version": self.policy_version,
            "breakdown": [{"code": b.code, "person_id": b.person_id,
                           "amount": _money(b.amount), "text": b.text}
                          for b in self.breakdown],
            "reasons": [{"code": r.code, "text": r.text, "source": r.source}
                        for r in self.reasons],
        }


# ----------------------------------------------------------------------------- helpers

def age_on(birth: date, on: date) -> int:
    """Whole years on ``on`` (the birthday counts on the day itself)."""
    return on.year - birth.year - ((birth.month, birth.day) > (on.month, on.day))


def _pct(rate: Decimal) -> str:
    s = format(rate * 100, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s + "%"


def _q(d: Decimal) -> Decimal:
    return d.quantize(_CENT, _HU)


_AREA_ZH = {"urban": "城市", "rural": "农村"}
_CARE_ZH = {"full": "全自理", "partial": "部分自理", "none": "完全不能自理"}
_KIND_ZH = {"emergency": "急难型", "expense": "支出型"}
_D3_TAIL = " 元（D3，仅取最高一档）"


class _Area:
    """Per-area constants of one policy (computed once, cached with the policy)."""

    __slots__ = ("S", "S_s", "zh", "Sm", "Sm_s", "m_s", "order", "amt", "sfx",
                 "d1_below", "d1_below_ok", "d1_not_below", "t1_tail", "t1_income_tail")

    def __init__(self, p: PolicyParams, area: str) -> None:
        S = p.dibao_standard_urban if area == "urban" else p.dibao_standard_rural
        self.S = S
        self.S_s = S_s = str(_q(S))
        self.zh = zh = _AREA_ZH[area]
        self.Sm = S * p.marginal_multiplier                 # exact; compared as Sm·n
        self.Sm_s = str(_q(self.Sm))
        self.m_s = format(p.marginal_multiplier, "f")
        amt = (None, _q(S * p.tier_rate_severe), _q(S * p.tier_rate_elderly_or_student),
               _q(S * p.tier_rate_family), _q(p.tier_flat_mild_disability))
        self.amt = amt
        self.sfx = (None,
                    f"：{S_s} × {_pct(p.tier_rate_severe)} = {amt[1]}{_D3_TAIL}",
                    f"：{S_s} × {_pct(p.tier_rate_elderly_or_student)} = {amt[2]}{_D3_TAIL}",
                    f"：{S_s} × {_pct(p.tier_rate_family)} = {amt[3]}{_D3_TAIL}",
                    f"：定额 {amt[4]}{_D3_TAIL}")
        # Highest amount first; equal amounts keep the lower tier number; zero tiers dropped.
        self.order = tuple(t for t in sorted((1, 2, 3, 4), key=lambda t: (-amt[t], t))
                           if amt[t] > 0)
        self.d1_below = f"），低于{zh}低保标准 {S_s} 元（D1）"
        self.d1_below_ok = f"），低于{zh}低保标准 {S_s} 元，家庭财产未超出限额，符合低保条件（D1）"
        self.d1_not_below = f"），不低于{zh}低保标准 {S_s} 元（D1）"
        self.t1_tail = (f" 元低于{zh}低保标准 {S_s} 元，无有履行能力的法定义务人，"
                        f"符合特困人员条件（T1）")
        self.t1_income_tail = f" 元不低于{zh}低保标准 {S_s} 元"


class _Consts:
    """Everything per policy that the per-household path needs (cached on the policy)."""

    __slots__ = ("version", "area", "U", "U_s", "ea", "minor", "exit_months", "level",
                 "d6_text", "tekun", "l_limit", "l_limit_s", "l_max")

    def __init__(self, policy: ResolvedPolicy) -> None:
        p = policy.params
        self.version = policy.version_id
        self.area = {"urban": _Area(p, "urban"), "rural": _Area(p, "rural")}
        self.U = p.dibao_standard_urban
        self.U_s = str(_q(self.U))
        self.ea = p.elderly_age
        self.minor = p.tekun_minor_age
        self.exit_months = p.gradual_exit_months
        if p.approval_delegated_to_township:
            self.level = "township"
            self.d6_text = "低保、特困审核确认权限已下放至乡镇（街道），由乡镇（街道）审核确认（D6）"
        else:
            self.level = "county"
            self.d6_text = "审核确认权限未下放至乡镇，由县级民政部门审核确认（D6）"
        base = p.tekun_multiplier * self.U
        mult_s = format(p.tekun_multiplier, "f")
        fees = {"full": p.tekun_care_fee_full_self_care, "partial": p.tekun_care_fee_partial,
                "none": p.tekun_care_fee_none}
        self.tekun = {}
        for care, fee in fees.items():
            amount = _q(base + fee)
            self.tekun[care] = (amount, (
                f" 基本生活费 {mult_s} × 城市低保标准 {self.U_s} = {_q(base)} 元"
                f" + 照料护理费（{_CARE_ZH[care]}）{_q(fee)} 元 = {amount} 元（T2）"))
        self.l_limit = p.linshi_township_limit
        self.l_limit_s = str(_q(p.linshi_township_limit))
        self.l_max = p.linshi_max_months


def _consts(policy: ResolvedPolicy) -> _Consts:
    c = policy.cache.get("rules")
    if c is None:
        c = policy.cache["rules"] = _Consts(policy)
    return c


def _tier(ac: _Area, m: Member, i: int, ay: int, amd: int, ea: int,
          fam: str | None) -> BreakdownLine | None:
    """D3: the line for the single highest tier that applies to member ``i``, or None."""
    g = m.disability_grade
    for t in ac.order:
        if t == 1:
            if g == 1 or g == 2:
                return BreakdownLine("D3", m.person_id, ac.amt[1],
                                     f"成员{i} 第一档·重度残疾（{g}级）{ac.sfx[1]}")
            if m.serious_illness:
                return BreakdownLine("D3", m.person_id, ac.amt[1], f"成员{i} 第一档·重病{ac.sfx[1]}")
        elif t == 2:
            b = m.birth_date
            age = ay - b.year - (b.month * 100 + b.day > amd)
            if age >= ea:
                return BreakdownLine("D3", m.person_id, ac.amt[2],
                                     f"成员{i} 第二档·老年人（{age} 周岁）{ac.sfx[2]}")
            if m.in_school:
                return BreakdownLine("D3", m.person_id, ac.amt[2], f"成员{i} 第二档·在校学生{ac.sfx[2]}")
        elif t == 3:
            if fam is not None:
                return BreakdownLine("D3", m.person_id, ac.amt[3], f"成员{i} 第三档·{fam}{ac.sfx[3]}")
        elif g == 3 or g == 4:
            return BreakdownLine("D3", m.person_id, ac.amt[4],
                                 f"成员{i} 第四档·非重度残疾（{g}级）{ac.sfx[4]}")
    return None


def _family(hh: Household, area: str) -> str | None:
    """D3 tier 3 label when it applies to every member of the household, else None."""
    if hh.single_parent:
        return "单亲家庭成员"
    if area == "rural":
        if hh.only_child:
            return "农村独生子女家庭成员"
        if hh.pure_daughter:
            return "农村纯女户家庭成员"
        if hh.land_lost:
            return "失地农村家庭成员"
    return None


# ----------------------------------------------------------------------------- engine

def assess(req: AssessmentRequest, policy: ResolvedPolicy) -> Assessment:
    """Assess one household under one resolved policy (API.md POST /v1/assessments)."""
    c = policy.cache.get("rules") or _consts(policy)
    program = req.program
    if program == "dibao":
        return _dibao(req, c)
    if program == "tekun":
        return _tekun(req, c)
    if program == "linshi":
        return _linshi(req, c)
    raise InvalidRequest([("program", "must be dibao, tekun or linshi")])


def _common(req: AssessmentRequest, c: _Consts) -> tuple[_Area, tuple[Member, ...], Decimal]:
    """Area constants, members, Σ income; checks the area, members and birth dates."""
    ac = c.area.get(req.area)
    if ac is None:
        raise InvalidRequest([("area", "must be urban or rural")])
    members = req.household.members
    if not members:
        raise InvalidRequest([("household.members", "at least one member is required")])
    as_of = req.as_of
    total = _ZERO
    for m in members:
        if m.birth_date > as_of:
            raise InvalidRequest([("household.members.birth_date", "after as_of")])
        total += m.monthly_income
    return ac, members, total


def _dibao(req: AssessmentRequest, c: _Consts) -> Assessment:
    ac, members, total = _common(req, c)
    hh = req.household
    n = len(members)
    rigid = hh.rigid_expenses_monthly
    emp = hh.employment_costs_monthly
    net = total - rigid - emp
    floored = net < 0
    if floored:
        net = _ZERO
    S = ac.S
    Sn = S * n
    below = net < Sn
    # D1 (pci is shown rounded; every decision above/below is exact)
    pci = (net / n).quantize(_CENT, _HU)
    if rigid or emp:
        calc = (f"家庭月人均收入 {pci} 元（月收入合计 {total.quantize(_CENT, _HU)} 元 − 刚性支出 "
                f"{rigid.quantize(_CENT, _HU)} 元 − 必要就业成本 {emp.quantize(_CENT, _HU)} 元"
                f"{'，不足 0 按 0 计' if floored else ''}，÷ {n} 人")
    else:
        calc = f"家庭月人均收入 {pci} 元（月收入合计 {total.quantize(_CENT, _HU)} 元 ÷ {n} 人"
    assets_ok = hh.assets_within_limits
    reasons = [Reason("D1", calc + ((ac.d1_below_ok if assets_ok else ac.d1_below) if below
                                    else ac.d1_not_below), _SRC_D1)]

    if not assets_ok:
        reasons.append(Reason("D1", "家庭财产超出当地低保财产限额（生活必须财产已豁免），"
                                    "不符合低保条件（D1）", _SRC_D1A))
        reasons.append(Reason("D6", c.d6_text, _SRC_D6))
        return Assessment(False, "denied", _ZERO, None, [], c.level, None, c.version, [], reasons)

    if below:                                            # approved: D2 + D3
        base = (Sn - net).quantize(_CENT, _HU)
        lines = [BreakdownLine("D2", None, base,
                               f"补差：{ac.zh}低保标准 {ac.S_s} 元 × {n} 人 − 家庭月可计收入 "
                               f"{net.quantize(_CENT, _HU)} 元 = {base} 元（D2）")]
        amount = base
        fam = _family(hh, req.area)
        as_of = req.as_of
        ay, amd, ea = as_of.year, as_of.month * 100 + as_of.day, c.ea
        append = lines.append
        i = 0
        for m in members:
            i += 1
            line = _tier(ac, m, i, ay, amd, ea, fam)
            if line is not None:
                amount += line.amount
                append(line)
        reasons.append(Reason("D6", c.d6_text, _SRC_D6))
        return Assessment(True, "approved", amount, None, [m.person_id for m in members],
                          c.level, None, c.version, lines, reasons)

    in_band = net < ac.Sm * n
    cur = req.current_benefit_monthly
    if cur is not None:
        if in_band:                                       # D5 gradual exit
            amount = cur.quantize(_CENT, _HU)
            reasons.append(Reason(
                "D5", f"家庭月人均收入不低于{ac.zh}低保标准 {ac.S_s} 元但低于其 {ac.m_s} 倍 "
                      f"{ac.Sm_s} 元，给予 {c.exit_months} 个月渐退期（D5）", _SRC_D5))
            reasons.append(Reason("D6", c.d6_text, _SRC_D6))
            line = BreakdownLine("D5", None, amount, f"渐退期内按现享受低保金发放 {amount} 元/月，"
                                                     f"共 {c.exit_months} 个月（D5）")
            return Assessment(True, "gradual_exit", amount, None,
                              [m.person_id for m in members], c.level, c.exit_months,
                              c.version, [line], reasons)
        reasons.append(Reason(
            "D5", f"家庭月人均收入达到或超过{ac.zh}低保标准的 {ac.m_s} 倍 {ac.Sm_s} 元，"
                  f"低保金停发，不适用渐退（D5）", _SRC_D5))

    if in_band:                                           # D4 single-person household
        lines = []
        covered = []
        who = []
        amount = _ZERO
        fam = _family(hh, req.area)
        as_of = req.as_of
        ay, amd, ea = as_of.year, as_of.month * 100 + as_of.day, c.ea
        i = 0
        for m in members:
            i += 1
            g = m.disability_grade
            if g == 1 or g == 2 or m.serious_illness:
                inc = m.monthly_income
                own = S - inc
                short = own < 0
                own = (_ZERO if short else own).quantize(_CENT, _HU)
                lines.append(BreakdownLine(
                    "D4", m.person_id, own,
                    f"成员{i} 单人户补差：{ac.zh}低保标准 {ac.S_s} 元 − 本人月收入 "
                    f"{inc.quantize(_CENT, _HU)} 元{'（不足 0 按 0 计）' if short else ''}"
                    f" = {own} 元（D4）"))
                amount += own
                line = _tier(ac, m, i, ay, amd, ea, fam)
                if line is not None:
                    amount += line.amount
                    lines.append(line)
                covered.append(m.person_id)
                who.append(f"成员{i}")
        if covered:
            reasons.append(Reason(
                "D4", f"家庭月人均收入不低于{ac.zh}低保标准但低于其 {ac.m_s} 倍 {ac.Sm_s} 元，"
                      f"{'、'.join(who)}（重度残疾或重病）按“单人户”单独纳入低保（D4）", _SRC_D4))
            reasons.append(Reason("D6", c.d6_text, _SRC_D6))
            return Assessment(True, "single_person", amount, None, covered, c.level, None,
                              c.version, lines, reasons)
        reasons.append(Reason("D4", "家庭中无重度残疾（1–2级）或重病成员，不适用“单人户”施保（D4）",
                              _SRC_D4))
    elif cur is None:
        reasons.append(Reason(
            "D4", f"家庭月人均收入达到或超过{ac.zh}低保标准的 {ac.m_s} 倍 {ac.Sm_s} 元，"
                  f"不适用“单人户”施保（D4）", _SRC_D4))
    reasons.append(Reason("D6", c.d6_text, _SRC_D6))
    return Assessment(False, "denied", _ZERO, None, [], c.level, None, c.version, [], reasons)


def _tekun(req: AssessmentRequest, c: _Consts) -> Assessment:
    ac, members, _ = _common(req, c)
    if req.household.has_able_legal_supporter:           # decisive for every member
        return Assessment(False, "denied", _ZERO, None, [], c.level, None, c.version, [], [
            Reason("T1", "家庭成员有具备履行能力的法定赡养、抚养、扶养义务人，"
                         "全体成员均不符合特困人员条件（T1）", _SRC_T1),
            Reason("D6", c.d6_text, _SRC_D6)])
    as_of = req.as_of
    ay, amd = as_of.year, as_of.month * 100 + as_of.day
    ea, minor = c.ea, c.minor
    S = ac.S
    tk = c.tekun
    lines: list[BreakdownLine] = []
    reasons: list[Reason] = []
    covered: list[str] = []
    amount = _ZERO
    i = 0
    for m in members:
        i += 1
        b = m.birth_date
        age = ay - b.year - (b.month * 100 + b.day > amd)
        g = m.disability_grade
        is_minor = False
        if age >= ea:
            cat = f"老年人（{age} 周岁）"
        elif age < minor:
            cat = f"未成年人（{age} 周岁，未满 {minor} 周岁）"
            is_minor = True
        elif g == 1 or g == 2:
            cat = f"重度残疾（{g}级）"
        elif g == 3 and m.disability_kind == "intellectual":
            cat = "三级智力残疾"
        elif g == 3 and m.disability_kind == "mental":
            cat = "三级精神残疾"
        else:
            cat = None
        no_labor = is_minor or m.labor_capacity == "none"
        inc = m.monthly_income
        if cat is not None and no_labor and inc < S:
            entry = tk.get(m.self_care)
            if entry is None:
                raise InvalidRequest([("household.members.self_care",
                                       "must be full, partial or none")])
            a = entry[0]
            amount += a
            covered.append(m.person_id)
            lines.append(BreakdownLine("T2", m.person_id, a, f"成员{i}{entry[1]}"))
            if is_minor:
                reasons.append(Reason("T1", f"成员{i}：{cat}，未成年人视为无劳动能力，本人月收入 "
                                            f"{inc.quantize(_CENT, _HU)}{ac.t1_tail}", _SRC_T1M))
            else:
                reasons.append(Reason("T1", f"成员{i}：{cat}，无劳动能力，本人月收入 "
                                            f"{inc.quantize(_CENT, _HU)}{ac.t1_tail}", _SRC_T1))
        else:
            why = []
            if cat is None:
                why.append(f"{age} 周岁，不属于老年人、未成年人、重度残疾或三级智力/精神残疾")
            if not no_labor:
                why.append("有劳动能力" if m.labor_capacity == "full" else "部分丧失劳动能力，并非无劳动能力")
            if inc >= S:
                why.append(f"本人月收入 {inc.quantize(_CENT, _HU)}{ac.t1_income_tail}")
            reasons.append(Reason("T1", f"成员{i}：{'；'.join(why)}，不符合特困人员条件（T1）",
                                  _SRC_T1))
    reasons.append(Reason("D6", c.d6_text, _SRC_D6))
    if covered:
        return Assessment(True, "approved", amount, None, covered, c.level, None, c.version,
                          lines, reasons)
    return Assessment(False, "denied", _ZERO, None, [], c.level, None, c.version, [], reasons)


def _linshi(req: AssessmentRequest, c: _Consts) -> Assessment:
    _, members, _ = _common(req, c)
    h = req.hardship
    if h is None:
        raise InvalidRequest([("hardship", "required for linshi")])
    kind = h.kind
    if kind not in _KIND_ZH:
        raise InvalidRequest([("hardship.kind", "must be emergency or expense")])
    months = h.months
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise InvalidRequest([("hardship.months", "must be an integer ≥ 1")])
    exp = h.expense_amount
    if kind == "expense" and (exp is None or exp < 0):
        raise InvalidRequest([("hardship.expense_amount",
                               "required (≥ 0) for an expense hardship")])
    n = len(members)
    eff = months if months <= c.l_max else c.l_max
    cap = c.U * n * eff
    capped = f"（申请 {months} 个月，最长 {c.l_max} 个月）" if eff < months else ""
    if kind == "emergency":
        amount = cap.quantize(_CENT, _HU)
        text = f"急难型：城市低保标准 {c.U_s} 元 × {n} 人 × {eff} 个月{capped} = {amount} 元（L3）"
    else:
        amount = (exp if exp < cap else cap).quantize(_CENT, _HU)
        text = (f"支出型：城市低保标准 {c.U_s} 元 × {n} 人 × {eff} 个月{capped} = "
                f"{cap.quantize(_CENT, _HU)} 元，与必要支出 {exp.quantize(_CENT, _HU)} 元取较小者"
                f" = {amount} 元（L3）")
    reasons = [Reason("L1", "临时救助由急难发生地受理和实施，不受户籍地、居住地限制（L1）", _SRC_L1),
               Reason("L2", f"困难类型：{_KIND_ZH[kind]}临时救助（L2）", _SRC_L2)]
    if amount <= c.l_limit:
        level = "township"
        l4 = f"救助金额 {amount} 元不超过乡镇审批额度 {c.l_limit_s} 元，由乡镇（街道）审批（L4）"
    else:
        level = "county"
        l4 = f"救助金额 {amount} 元超过乡镇审批额度 {c.l_limit_s} 元，报县级民政部门审批（L4）"
    if amount > 0:
        reasons.append(Reason("L4", l4, _SRC_L4))
        return Assessment(True, "approved", None, amount, [m.person_id for m in members],
                          level, None, c.version, [BreakdownLine("L3", None, amount, text)],
                          reasons)
    reasons.append(Reason("L3", f"{text}，无可发放金额", _SRC_L3))
    reasons.append(Reason("L4", l4, _SRC_L4))
    return Assessment(False, "denied", None, _ZERO, [], level, None, c.version, [], reasons)
