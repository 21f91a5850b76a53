"""M1: the seven categories of the low-income population (QN 二(二)) and how programs map to them."""
from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "dibao": "城乡低保对象",
    "tekun": "特困供养人员",
    "marginal": "低保边缘人口",
    "unstable_post_poverty": "脱贫不稳定人口",
    "at_risk_of_poverty": "边缘易致贫人口",
    "sudden_hardship": "突发严重困难家庭人口",
    "other_low_income": "其他低收入人口",
}

# Which category a paid benefit puts its covered persons in (DecisionMade / BenefitChanged).
PROGRAM_CATEGORY: dict[str, str] = {"dibao": "dibao", "tekun": "tekun", "linshi": "sudden_hardship"}

# Outcomes of a decision under which a benefit is paid.
PAID_OUTCOMES = frozenset({"approved", "single_person", "gradual_exit"})

SUPPLY_MODES = ("dispersed", "centralized")  # T3: 分散供养 / 集中供养


def is_category(value: str) -> bool:
    return value in CATEGORIES
