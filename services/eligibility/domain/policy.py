"""Policy parameters: what they are, how a published set is validated, how versions resolve.

Every number the rules use is a parameter (POLICY.md: "never as a literal in code"). A
*version* is what ``POST /v1/policies`` publishes: a region, an ``effective_from`` date and
any subset of the parameters below. The parameters in force for a region on a date are
resolved **per parameter**:

1. nearest region first: the region itself, then its parent, … up to the national root
   (``000000000000``); the hierarchy is read from the 12-digit code (segments 2-2-2-3-3);
2. within one region, the version with the latest ``effective_from`` that is ≤ the date and
   that sets the parameter; two versions of one region with the same date: the one later in
   the candidate list (publication order) wins.

So a county that publishes only a new urban standard for 2026 keeps its own 2025 rural
standard and inherits everything else from the province or the national defaults. A
parameter nobody sets is reported as missing (the dibao standards are never defaulted: the
county loads them, POLICY.md §1).

Pure: no I/O, stdlib only. Values are ``Decimal`` (money, rates, multipliers), ``int`` or
``bool``; the JSON form of money/rates/multipliers is a decimal *string* (API.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

__all__ = [
    "MONEY", "RATE", "MULTIPLIER", "INT", "BOOL",
    "ParamSpec", "PARAM_SPECS", "PolicyParams", "PolicyVersion", "Resolution",
    "ResolvedPolicy", "region_depth", "is_within", "validate_params", "coerce_value", "resolve",
]

MONEY = "money"            # yuan, decimal string, ≥ 0, at most 2 places
RATE = "rate"              # decimal string, 0 ≤ r ≤ 1
MULTIPLIER = "multiplier"  # decimal string, ≥ 1
INT = "int"                # JSON integer, ≥ 0 (and ≤ maximum)
BOOL = "bool"              # JSON true/false


@dataclass(frozen=True, slots=True)
class ParamSpec:
    key: str
    kind: str
    label: str             # Chinese label for explanations and forms
    rule: str              # POLICY.md rule code the parameter belongs to
    maximum: int | None = None   # INT only: a sanity bound


PARAM_SPECS: dict[str, ParamSpec] = {s.key: s for s in (
    ParamSpec("dibao_standard_urban", MONEY, "城市低保标准（元/月）", "D1"),
    ParamSpec("dibao_standard_rural", MONEY, "农村低保标准（元/月）", "D1"),
    ParamSpec("tier_rate_severe", RATE, "分类施保第一档（重残、重病）比例", "D3"),
    ParamSpec("tier_rate_elderly_or_student", RATE, "分类施保第二档（老年人、在校学生）比例", "D3"),
    ParamSpec("tier_rate_family", RATE, "分类施保第三档（单亲、独生子女、纯女户、失地家庭）比例", "D3"),
    ParamSpec("tier_flat_mild_disability", MONEY, "分类施保第四档（非重度残疾人）定额（元/月）", "D3"),
    ParamSpec("elderly_age", INT, "老年人年龄（周岁）", "D3", 150),
    ParamSpec("marginal_multiplier", MULTIPLIER, "低保边缘/渐退倍数", "D4"),
    ParamSpec("gradual_exit_months", INT, "渐退期（月）", "D5", 120),
    ParamSpec("tekun_multiplier", MULTIPLIER, "特困基本生活标准倍数（对城市低保标准）", "T2"),
    ParamSpec("tekun_minor_age", INT, "特困未成年人年龄上限（周岁，不含）", "T1", 150),
    ParamSpec("tekun_care_fee_full_self_care", MONEY, "照料护理费：全自理（元/月）", "T2"),
    ParamSpec("tekun_care_fee_partial", MONEY, "照料护理费：部分自理（元/月）", "T2"),
    ParamSpec("tekun_care_fee_none", MONEY, "照料护理费：完全不能自理（元/月）", "T2"),
    ParamSpec("linshi_township_limit", MONEY, "乡镇审批临时救助额度上限（元）", "L4"),
    ParamSpec("linshi_max_months", INT, "临时救助最长保障月数", "L3", 120),
    ParamSpec("approval_delegated_to_township", BOOL, "低保/特困审核确认权限下放乡镇", "D6"),
)}

# Digits allowed before/after the point, per decimal kind (keeps values sane and exact).
_DECIMAL_RE = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]{1,12}))?")
_MAX_PLACES = {MONEY: 2, RATE: 6, MULTIPLIER: 6}


def _check_decimal(kind: str, v: Any) -> tuple[Decimal | None, str | None]:
    if isinstance(v, bool) or not isinstance(v, str):
        if isinstance(v, float):
            return None, "must be a decimal string (e.g. \"0.30\"), not a JSON number"
        return None, "must be a decimal string"
    m = _DECIMAL_RE.fullmatch(v)
    if m is None:
        return None, "must be a decimal string of digits with an optional '.' (e.g. \"800.00\")"
    places = len(m.group(3) or "")
    if places > _MAX_PLACES[kind]:
        return None, f"at most {_MAX_PLACES[kind]} decimal places"
    d = Decimal(v)
    if kind == MONEY and d < 0:
        return None, "must not be negative"
    if kind == RATE and not (0 <= d <= 1):
        return None, "must be between 0 and 1"
    if kind == MULTIPLIER and d < 1:
        return None, "must be at least 1"
    return d, None


def _check(spec: ParamSpec, v: Any) -> tuple[Any, str | None]:
    kind = spec.kind
    if kind == INT:
        if isinstance(v, bool) or not isinstance(v, int):
            return None, "must be a JSON integer"
        if v < 0:
            return None, "must not be negative"
        if spec.maximum is not None and v > spec.maximum:
            return None, f"must be at most {spec.maximum}"
        return v, None
    if kind == BOOL:
        if not isinstance(v, bool):
            return None, "must be true or false"
        return v, None
    return _check_decimal(kind, v)


def validate_params(raw: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Validate the ``params`` object of ``POST /v1/policies``.

    Returns ``(values, errors)``: ``values`` maps each valid key to its typed value
    (``Decimal`` / ``int`` / ``bool``); ``errors`` lists ``("params.<key>", message)`` for every
    bad field (unknown keys included). The caller stores the version only when ``errors`` is
    empty. An empty object is valid (a version that changes nothing).
    """
    if not isinstance(raw, Mapping):
        return {}, [("params", "must be an object")]
    values: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for key, v in raw.items():
        spec = PARAM_SPECS.get(key)
        if spec is None:
            errors.append((f"params.{key}", "unknown parameter"))
            continue
        value, err = _check(spec, v)
        if err is not None:
            errors.append((f"params.{key}", err))
        else:
            values[key] = value
    return values, errors


def coerce_value(key: str, v: Any) -> Any:
    """Typed value of a stored parameter (accepts validated values or their JSON form)."""
    kind = PARAM_SPECS[key].kind
    if kind == INT:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{key}: not an integer: {v!r}")
        return v
    if kind == BOOL:
        if not isinstance(v, bool):
            raise ValueError(f"{key}: not a boolean: {v!r}")
        return v
    if isinstance(v, float):
        raise ValueError(f"{key}: floats are not allowed for decimal parameters")
    return v if isinstance(v, Decimal) else Decimal(str(v))


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """The complete parameter set the engine runs on (every field required)."""

    dibao_standard_urban: Decimal
    dibao_standard_rural: Decimal
    tier_rate_severe: Decimal
    tier_rate_elderly_or_student: Decimal
    tier_rate_family: Decimal
    tier_flat_mild_disability: Decimal
    elderly_age: int
    marginal_multiplier: Decimal
    gradual_exit_months: int
    tekun_multiplier: Decimal
    tekun_minor_age: int
    tekun_care_fee_full_self_care: Decimal
    tekun_care_fee_partial: Decimal
    tekun_care_fee_none: Decimal
    linshi_township_limit: Decimal
    linshi_max_months: int
    approval_delegated_to_township: bool

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "PolicyParams":
        """Build from a mapping holding every key (typed or JSON-form values)."""
        missing = [k for k in PARAM_SPECS if k not in values]
        if missing:
            raise ValueError(f"missing policy parameters: {', '.join(missing)}")
        return cls(**{k: coerce_value(k, values[k]) for k in PARAM_SPECS})

    def to_json(self) -> dict[str, Any]:
        """JSON form (decimal strings, ints, bools) as in API.md."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Decimal) else v
        return out


assert tuple(f.name for f in fields(PolicyParams)) == tuple(PARAM_SPECS), "PolicyParams/PARAM_SPECS drift"


@dataclass(frozen=True, eq=False)
class ResolvedPolicy:
    """The parameters in force for one region on one date, ready for :func:`rules.assess`.

    ``version_id`` is the primary version (the nearest region's latest version in force that
    contributed a parameter); it is what an assessment reports as ``policy_version``.
    ``sources`` names, for each parameter, the version it came from. ``standard_adjusted_on``
    is the ``effective_from`` of the version that last set a dibao standard.

    The engine caches per-policy constants in ``cache`` (resolve once, assess many).
    """

    params: PolicyParams
    version_id: str
    sources: Mapping[str, str] = field(default_factory=dict)
    standard_adjusted_on: date | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One published version (a candidate for resolution)."""

    version_id: str
    region_code: str
    effective_from: date
    params: Mapping[str, Any]


_SEGMENTS = ((9, 12), (6, 9), (4, 6), (2, 4), (0, 2))   # village … province


def region_depth(code: str) -> int:
    """Number of significant leading digits of a 12-digit region code (0 = national root).

    Province ``520000000000`` → 2, prefecture ``522700000000`` → 4, county
    ``522701000000`` → 6, township ``522701001000`` → 9, village → 12.
    """
    if len(code) != 12 or not code.isascii() or not code.isdigit():
        raise ValueError(f"region code must be 12 digits: {code!r}")
    for start, end in _SEGMENTS:
        if code[start:end].strip("0"):
            return end
    return 0


def is_within(code: str, ancestor: str) -> bool:
    """True when ``code`` is ``ancestor`` or lies inside it."""
    d = region_depth(ancestor)
    return code[:d] == ancestor[:d]


@dataclass(frozen=True)
class Resolution:
    """Result of :func:`resolve`: the values in force, where each came from, what is missing."""

    on: date
    values: dict[str, Any]
    sources: dict[str, str]
    missing: list[str]
    version_id: str | None
    effective_dates: dict[str, date]   # version id → effective_from (contributing versions)

    @property
    def complete(self) -> bool:
        return not self.missing

    def policy(self) -> ResolvedPolicy:
        """The :class:`ResolvedPolicy`; raises ``ValueError`` naming missing parameters."""
        if self.missing or self.version_id is None:
            raise ValueError(f"policy incomplete on {self.on.isoformat()}: missing "
                             + ", ".join(self.missing))
        adjusted = max(self.effective_dates[self.sources[k]]
                       for k in ("dibao_standard_urban", "dibao_standard_rural"))
        return ResolvedPolicy(params=PolicyParams.from_values(self.values),
                              version_id=self.version_id, sources=dict(self.sources),
                              standard_adjusted_on=adjusted)


def _as_version(c: Any) -> PolicyVersion:
    if isinstance(c, PolicyVersion):
        v = c
    else:
        v = PolicyVersion(*c)
    eff = v.effective_from
    if isinstance(eff, str):
        v = PolicyVersion(v.version_id, v.region_code, date.fromisoformat(eff), v.params)
    return v


def resolve(candidates: Iterable[Any], on: date, region_code: str | None = None) -> Resolution:
    """Resolve the parameters in force on ``on``.

    ``candidates``: ``PolicyVersion`` objects or ``(version_id, region_code, effective_from,
    params)`` tuples, from the region and its ancestors (``effective_from`` a ``date`` or ISO
    string; ``params`` typed or JSON-form values). When ``region_code`` is given, candidates
    outside its ancestry are ignored. Versions effective after ``on`` are ignored, so asking
    for an earlier date gives the history. Unknown keys in stored params are ignored.
    """
    ranked: list[tuple[int, date, int, PolicyVersion]] = []
    for i, c in enumerate(candidates):
        v = _as_version(c)
        if v.effective_from > on:
            continue
        if region_code is not None and not is_within(region_code, v.region_code):
            continue
        ranked.append((region_depth(v.region_code), v.effective_from, i, v))
    ranked.sort(key=lambda t: (t[0], t[1], t[2]), reverse=True)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    dates: dict[str, date] = {}
    primary: str | None = None
    for _, eff, _, v in ranked:
        contributed = False
        for key, value in v.params.items():
            if key in PARAM_SPECS and key not in values:
                values[key] = coerce_value(key, value)
                sources[key] = v.version_id
                contributed = True
        if contributed:
            dates[v.version_id] = eff
            if primary is None:
                primary = v.version_id
        if len(values) == len(PARAM_SPECS):
            break
    missing = [k for k in PARAM_SPECS if k not in values]
    return Resolution(on=on, values=values, sources=sources, missing=missing,
                      version_id=primary, effective_dates=dates)
