"""Policy parameters: validation of POST /v1/policies params, and resolution by region and date.

Rule codes: every parameter belongs to a rule (D1 standards, D3 tiers, D4/D5 multiplier and
exit months, D6 delegation, T1/T2 tekun, L3/L4 linshi); resolution implements API.md
"Parameters not given are inherited from the nearest parent region's version in force" and the
yearly adjustment of standards (动态调整, 001_3569ff067e28e058.txt 二(三)5).
"""
from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest

from services.eligibility.domain.policy import (
    PARAM_SPECS, PolicyParams, PolicyVersion, ResolvedPolicy, is_within, region_depth, resolve,
    validate_params,
)

DATA = Path(__file__).resolve().parents[3] / "services" / "eligibility" / "data"

API_EXAMPLE = {
    "dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00",
    "tier_rate_severe": "0.30", "tier_rate_elderly_or_student": "0.20",
    "tier_rate_family": "0.15", "tier_flat_mild_disability": "70.00",
    "elderly_age": 60, "marginal_multiplier": "1.5", "gradual_exit_months": 6,
    "tekun_multiplier": "1.3", "tekun_minor_age": 18,
    "tekun_care_fee_full_self_care": "0.00", "tekun_care_fee_partial": "200.00",
    "tekun_care_fee_none": "500.00",
    "linshi_township_limit": "1500.00", "linshi_max_months": 6,
    "approval_delegated_to_township": True,
}


SEED_FILES = {"000_e289ce00f249d99f.txt", "001_3569ff067e28e058.txt", "003_dbf974436b87d268.txt",
              "004_9a8ed5a80bd73913.txt"}


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- specs + data files

def test_D1_T2_L4_param_specs_cover_exactly_the_api_example():
    assert set(PARAM_SPECS) == set(API_EXAMPLE)
    values, errors = validate_params(API_EXAMPLE)
    assert errors == []
    params = PolicyParams.from_values(values)
    assert params.to_json() == API_EXAMPLE


def test_D3_default_policy_file_states_the_seed_numbers_with_sources():
    doc = load("default_policy.json")
    values, errors = validate_params(doc["params"])
    assert errors == []
    assert "dibao_standard_urban" not in values and "dibao_standard_rural" not in values
    assert values["tier_rate_severe"] == D("0.30")
    assert values["tier_rate_elderly_or_student"] == D("0.20")
    assert values["tier_rate_family"] == D("0.15")
    assert values["tier_flat_mild_disability"] == D("70.00")
    assert values["elderly_age"] == 60
    assert values["marginal_multiplier"] == D("1.5") and values["gradual_exit_months"] == 6
    assert values["tekun_multiplier"] == D("1.3") and values["tekun_minor_age"] == 18
    assert values["linshi_township_limit"] == D("1500.00") and values["linshi_max_months"] == 6
    assert values["approval_delegated_to_township"] is True
    assert set(doc["sources"]) == set(doc["params"])
    seeds = Path(__file__).resolve().parents[4] / "shared" / "seeds"
    for key, src in doc["sources"].items():
        cited = re.findall(r"\d{3}_[0-9a-f]{16}\.txt [一二三四五六七八九十]+\([一二三四五六七八九十]+\)", src)
        assert cited, key
        for c in cited:
            fname = c.split()[0]
            assert fname in SEED_FILES, (key, fname)
            if seeds.is_dir():
                assert (seeds / fname).is_file(), (key, fname)


def test_D1_example_standards_are_marked_as_example():
    doc = load("example_standards.json")
    assert doc["EXAMPLE"] is True and "NOT OFFICIAL" in doc["notice"]
    assert doc["region_code"] == "522701000000"
    values, errors = validate_params(doc["params"])
    assert errors == [] and values == {"dibao_standard_urban": D("800.00"),
                                       "dibao_standard_rural": D("600.00")}


# --------------------------------------------------------------------------- validate_params

BAD = [
    # id, params, field, message fragment
    pytest.param({"foo": "1"}, "params.foo", "unknown", id="D1-unknown-key"),
    pytest.param({"dibao_standard_urban": 800.0}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-float-rejected"),
    pytest.param({"dibao_standard_urban": 800}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-json-integer-rejected"),
    pytest.param({"dibao_standard_urban": "-1.00"}, "params.dibao_standard_urban", "negative",
                 id="D1-money-negative"),
    pytest.param({"dibao_standard_urban": "800.001"}, "params.dibao_standard_urban", "2 decimal places",
                 id="D1-money-three-places"),
    pytest.param({"dibao_standard_urban": "8e2"}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-exponent"),
    pytest.param({"dibao_standard_urban": "NaN"}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-nan"),
    pytest.param({"dibao_standard_urban": " 800.00"}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-whitespace"),
    pytest.param({"dibao_standard_urban": "８００"}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-fullwidth-digits"),
    pytest.param({"dibao_standard_urban": True}, "params.dibao_standard_urban", "decimal string",
                 id="D1-money-bool"),
    pytest.param({"tier_rate_severe": "1.01"}, "params.tier_rate_severe", "between 0 and 1",
                 id="D3-rate-above-1"),
    pytest.param({"tier_rate_family": "-0.15"}, "params.tier_rate_family", "between 0 and 1",
                 id="D3-rate-negative"),
    pytest.param({"tier_rate_severe": 0.3}, "params.tier_rate_severe", "decimal string",
                 id="D3-rate-float-rejected"),
    pytest.param({"tier_flat_mild_disability": "-70.00"}, "params.tier_flat_mild_disability",
                 "negative", id="D3-flat-negative"),
    pytest.param({"marginal_multiplier": "0.99"}, "params.marginal_multiplier", "at least 1",
                 id="D5-multiplier-below-1"),
    pytest.param({"tekun_multiplier": "0.5"}, "params.tekun_multiplier", "at least 1",
                 id="T2-multiplier-below-1"),
    pytest.param({"elderly_age": 60.0}, "params.elderly_age", "integer", id="D3-int-float"),
    pytest.param({"elderly_age": "60"}, "params.elderly_age", "integer", id="D3-int-string"),
    pytest.param({"gradual_exit_months": True}, "params.gradual_exit_months", "integer",
                 id="D5-int-bool"),
    pytest.param({"gradual_exit_months": -1}, "params.gradual_exit_months", "negative",
                 id="D5-int-negative"),
    pytest.param({"tekun_minor_age": 200}, "params.tekun_minor_age", "at most", id="T1-int-absurd"),
    pytest.param({"linshi_max_months": 6.5}, "params.linshi_max_months", "integer", id="L3-int-fraction"),
    pytest.param({"approval_delegated_to_township": "true"}, "params.approval_delegated_to_township",
                 "true or false", id="D6-bool-string"),
    pytest.param({"approval_delegated_to_township": 1}, "params.approval_delegated_to_township",
                 "true or false", id="D6-bool-int"),
    pytest.param({"linshi_township_limit": 1500}, "params.linshi_township_limit", "decimal string",
                 id="L4-limit-int"),
]


@pytest.mark.parametrize("params, field, fragment", BAD)
def test_D1_D3_D5_D6_T1_T2_L3_L4_validate_params_rejects_and_names_the_field(params, field, fragment):
    values, errors = validate_params(params)
    assert values == {}
    assert len(errors) == 1
    assert errors[0][0] == field and fragment in errors[0][1]


GOOD = [
    pytest.param({"tier_rate_severe": "0"}, D("0"), id="D3-rate-0"),
    pytest.param({"tier_rate_severe": "1"}, D("1"), id="D3-rate-1"),
    pytest.param({"tier_rate_severe": "1.000"}, D("1.000"), id="D3-rate-1.000"),
    pytest.param({"tier_rate_severe": "0.333333"}, D("0.333333"), id="D3-rate-six-places"),
    pytest.param({"marginal_multiplier": "1"}, D("1"), id="D5-multiplier-1"),
    pytest.param({"dibao_standard_urban": "800"}, D("800"), id="D1-money-no-places"),
    pytest.param({"dibao_standard_urban": "0.00"}, D("0.00"), id="D1-money-zero"),
    pytest.param({"gradual_exit_months": 0}, 0, id="D5-int-zero"),
    pytest.param({"approval_delegated_to_township": False}, False, id="D6-false"),
]


@pytest.mark.parametrize("params, value", GOOD)
def test_D1_D3_D5_D6_validate_params_accepts_edges(params, value):
    values, errors = validate_params(params)
    assert errors == []
    assert list(values.values()) == [value]
    assert type(list(values.values())[0]) is type(value)


def test_D3_T2_validate_params_reports_every_bad_field_and_keeps_good_ones():
    values, errors = validate_params({"tier_rate_severe": "2", "elderly_age": 65, "bogus": 1,
                                      "tekun_care_fee_none": 500.5})
    assert values == {"elderly_age": 65}
    assert sorted(f for f, _ in errors) == ["params.bogus", "params.tekun_care_fee_none",
                                             "params.tier_rate_severe"]


def test_D1_validate_params_requires_an_object():
    assert validate_params(["dibao_standard_urban"]) == ({}, [("params", "must be an object")])
    assert validate_params({}) == ({}, [])


# --------------------------------------------------------------------------- regions

@pytest.mark.parametrize("code, depth", [
    ("000000000000", 0), ("520000000000", 2), ("522700000000", 4), ("522701000000", 6),
    ("522701001000", 9), ("522701001001", 12), ("110100000000", 4),
])
def test_D6_region_depth(code, depth):
    assert region_depth(code) == depth


@pytest.mark.parametrize("code", ["52270100000", "5227010000001", "52270100000a", ""])
def test_D6_region_code_must_be_12_digits(code):
    with pytest.raises(ValueError):
        region_depth(code)


def test_D6_is_within():
    assert is_within("522701001000", "522701000000")
    assert is_within("522701001000", "520000000000")
    assert is_within("522701001000", "000000000000")
    assert is_within("522701000000", "522701000000")
    assert not is_within("522702001000", "522701000000")
    assert not is_within("522701000000", "522701001000")


# --------------------------------------------------------------------------- resolve

ROOT_DEFAULTS = {k: v for k, v in API_EXAMPLE.items() if not k.startswith("dibao_standard")}
VERSIONS = [
    ("root-2020", "000000000000", date(2020, 1, 1), ROOT_DEFAULTS),
    ("gz-2021", "520000000000", date(2021, 1, 1), {"linshi_township_limit": "2000.00"}),
    ("dy-2025", "522701000000", date(2025, 1, 1),
     {"dibao_standard_urban": "700.00", "dibao_standard_rural": "500.00"}),
    ("dy-2026", "522701000000", date(2026, 1, 1), {"dibao_standard_urban": "800.00"}),
    ("gz-2026-06", "520000000000", date(2026, 6, 1),
     {"tier_rate_family": "0.18", "dibao_standard_rural": "999.00"}),
    ("other-county", "522702000000", date(2026, 1, 1), {"dibao_standard_urban": "1.00"}),
]


def test_D1_resolve_inherits_from_parent_regions():
    res = resolve(VERSIONS, date(2026, 11, 1), "522701001000")
    assert res.missing == []
    assert res.values["dibao_standard_urban"] == D("800.00")        # county 2026
    assert res.sources["dibao_standard_urban"] == "dy-2026"
    assert res.values["dibao_standard_rural"] == D("500.00")        # county 2025 beats province 2026
    assert res.sources["dibao_standard_rural"] == "dy-2025"
    assert res.values["linshi_township_limit"] == D("2000.00")      # province
    assert res.sources["linshi_township_limit"] == "gz-2021"
    assert res.values["tier_rate_family"] == D("0.18")              # province, newest in force
    assert res.sources["tier_rate_family"] == "gz-2026-06"
    assert res.sources["tier_rate_severe"] == "root-2020"
    assert res.version_id == "dy-2026"
    pol = res.policy()
    assert isinstance(pol, ResolvedPolicy)
    assert pol.version_id == "dy-2026" and pol.sources == res.sources
    assert pol.standard_adjusted_on == date(2026, 1, 1)
    assert pol.params.dibao_standard_urban == D("800.00")


@pytest.mark.parametrize("on, urban, urban_src, family, adjusted", [
    pytest.param(date(2025, 12, 31), "700.00", "dy-2025", "0.15", date(2025, 1, 1), id="D1-history-2025"),
    pytest.param(date(2026, 1, 1), "800.00", "dy-2026", "0.15", date(2026, 1, 1),
                 id="D1-new-standard-on-its-effective-date"),
    pytest.param(date(2026, 5, 31), "800.00", "dy-2026", "0.15", date(2026, 1, 1), id="D3-before-province-change"),
    pytest.param(date(2026, 6, 1), "800.00", "dy-2026", "0.18", date(2026, 1, 1), id="D3-after-province-change"),
])
def test_D1_resolve_history_by_date(on, urban, urban_src, family, adjusted):
    res = resolve(VERSIONS, on, "522701001000")
    assert res.values["dibao_standard_urban"] == D(urban)
    assert res.sources["dibao_standard_urban"] == urban_src
    assert res.values["tier_rate_family"] == D(family)
    assert res.policy().standard_adjusted_on == adjusted


def test_D1_resolve_before_any_county_standard_reports_missing():
    res = resolve(VERSIONS, date(2024, 12, 31), "522701001000")
    assert res.missing == ["dibao_standard_urban", "dibao_standard_rural"]
    assert not res.complete
    with pytest.raises(ValueError, match="dibao_standard_urban"):
        res.policy()


def test_D1_resolve_ignores_versions_outside_the_region_ancestry():
    res = resolve(VERSIONS, date(2026, 11, 1), "522701001000")
    assert "other-county" not in res.sources.values()
    sibling = resolve(VERSIONS, date(2026, 11, 1), "522702000000")
    assert sibling.values["dibao_standard_urban"] == D("1.00")
    assert sibling.values["dibao_standard_rural"] == D("999.00")    # province fills the gap


def test_D1_resolve_province_parameter_applies_where_county_silent():
    res = resolve(VERSIONS, date(2026, 11, 1), "523000000000")     # another prefecture
    assert res.missing == ["dibao_standard_urban"]
    assert res.sources["dibao_standard_rural"] == "gz-2026-06"


def test_D1_resolve_same_region_same_date_later_publication_wins():
    vs = VERSIONS + [("dy-2026-fix", "522701000000", date(2026, 1, 1),
                      {"dibao_standard_urban": "810.00"})]
    res = resolve(vs, date(2026, 11, 1), "522701000000")
    assert res.sources["dibao_standard_urban"] == "dy-2026-fix"
    assert res.values["dibao_standard_urban"] == D("810.00")


def test_D1_resolve_accepts_versions_objects_and_iso_dates():
    vs = [PolicyVersion("root", "000000000000", date(2020, 1, 1), API_EXAMPLE),
          ("c", "522701000000", "2026-01-01", {"dibao_standard_urban": D("900.00")})]
    res = resolve(vs, date(2026, 1, 1))
    assert res.sources["dibao_standard_urban"] == "c"
    assert res.sources["dibao_standard_rural"] == "root"
    assert res.effective_dates == {"c": date(2026, 1, 1), "root": date(2020, 1, 1)}
    assert res.policy().standard_adjusted_on == date(2026, 1, 1)


def test_D1_resolve_shipped_defaults_and_example_standards():
    base, ex = load("default_policy.json"), load("example_standards.json")
    res = resolve([("root", base["region_code"], base["effective_from"], base["params"]),
                   ("ex", ex["region_code"], ex["effective_from"], ex["params"])],
                  date(2026, 11, 1), "522701001000")
    assert res.missing == []
    p = res.policy().params
    assert (p.dibao_standard_urban, p.dibao_standard_rural) == (D("800.00"), D("600.00"))
    assert p.approval_delegated_to_township is True


def test_D1_policy_params_from_values_requires_every_parameter():
    with pytest.raises(ValueError, match="dibao_standard_rural"):
        PolicyParams.from_values({k: v for k, v in API_EXAMPLE.items() if k != "dibao_standard_rural"})
