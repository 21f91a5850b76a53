from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInput
from shared.money import (
    ZERO,
    MoneyStr,
    SignedMoneyStr,
    format_yuan,
    from_fen,
    parse_money,
    round_yuan,
    to_fen,
)


class Payment(BaseModel):
    amount: MoneyStr
    adjustment: SignedMoneyStr = ZERO


@pytest.mark.parametrize("value, expected", [
    ("1234.5", Decimal("1234.5")),
    (" 0.015 ", Decimal("0.015")),
    ("+7", Decimal("7")),
    (".5", Decimal("0.5")),
    (12, Decimal("12")),
    (Decimal("3.141"), Decimal("3.141")),
    ("-0.00", ZERO),
])
def test_parse_money_keeps_exact_value(value, expected):
    result = parse_money(value)
    assert result == expected and not result.is_signed()


@pytest.mark.parametrize("value, message", [
    (0.1, "floating-point"),
    (True, "floating-point"),
    ("abc", "decimal amount"),
    ("1e3", "decimal amount"),
    ("1,000", "decimal amount"),
    ("NaN", "decimal amount"),
    ("Infinity", "decimal amount"),
    (Decimal("NaN"), "finite"),
    (Decimal("-Infinity"), "finite"),
    ("-1.00", "negative"),
    ("1" * 16, "too large"),
    ("", "decimal amount"),
    (None, "not NoneType"),
])
def test_parse_money_rejects(value, message):
    with pytest.raises(InvalidInput) as exc:
        parse_money(value, field="monthly_income")
    assert exc.value.errors[0]["field"] == "monthly_income"
    assert message in exc.value.errors[0]["message"]
    assert exc.value.status == 422


def test_parse_money_allows_negative_when_asked():
    assert parse_money("-12.30", allow_negative=True) == Decimal("-12.30")


@pytest.mark.parametrize("value, expected", [
    ("0.005", "0.01"), ("0.004", "0.00"), ("2.675", "2.68"), ("-2.675", "-2.68"),
    ("1.125", "1.13"), ("-0.004", "0.00"), ("1234.5", "1234.50"),
])
def test_round_half_up(value, expected):
    assert str(round_yuan(Decimal(value))) == expected
    assert format_yuan(Decimal(value)) == expected


def test_fen_conversions():
    assert to_fen(Decimal("1234.50")) == 123450
    assert to_fen(Decimal("0.005")) == 1
    assert to_fen(Decimal("-1.995")) == -200
    assert from_fen(123450) == Decimal("1234.50") and str(from_fen(123450)) == "1234.50"
    assert str(from_fen(-5)) == "-0.05"
    assert str(from_fen(0)) == "0.00"
    with pytest.raises(TypeError):
        from_fen(1.0)
    with pytest.raises(TypeError):
        round_yuan(0.1)


def test_format_has_no_exponent_or_grouping():
    assert format_yuan(Decimal("1E+3")) == "1000.00"
    assert format_yuan(ZERO) == "0.00"


@given(st.integers(min_value=-10**17, max_value=10**17))
def test_fen_round_trip(fen):
    assert to_fen(from_fen(fen)) == fen


@given(st.decimals(min_value=-10**14, max_value=10**14, allow_nan=False, allow_infinity=False, places=6))
def test_round_yuan_idempotent_and_close(d):
    once = round_yuan(d)
    assert round_yuan(once) == once
    assert abs(once - d) <= Decimal("0.005")
    assert from_fen(to_fen(d)) == once


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=20))
def test_sum_of_fen_equals_sum_of_yuan(fens):
    assert sum((from_fen(f) for f in fens), ZERO) == from_fen(sum(fens))


def test_money_str_in_models():
    p = Payment(amount="800", adjustment="-12.345")
    assert p.amount == Decimal("800") and p.adjustment == Decimal("-12.345")
    assert p.model_dump(mode="json") == {"amount": "800.00", "adjustment": "-12.35"}
    assert Payment.model_validate_json('{"amount": "0.10"}').amount == Decimal("0.10")
    assert Payment.model_validate_json('{"amount": 5}').amount == Decimal("5")


@pytest.mark.parametrize("payload, message", [
    ('{"amount": 0.1}', "floating-point"),
    ('{"amount": "-1"}', "must not be negative"),
    ('{"amount": "ten"}', "decimal amount"),
    ('{"amount": null}', "not NoneType"),
])
def test_money_str_rejects_with_clear_message(payload, message):
    with pytest.raises(ValidationError) as exc:
        Payment.model_validate_json(payload)
    err = exc.value.errors()[0]
    assert err["loc"] == ("amount",) and message in err["msg"]


def test_money_str_json_schema_is_a_string():
    schema = Payment.model_json_schema()
    assert schema["properties"]["amount"]["type"] == "string"
