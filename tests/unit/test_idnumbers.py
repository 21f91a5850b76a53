from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn.ric import calc_check_digit

from shared.idnumbers import (
    InvalidIdNumber,
    birth_date_of,
    is_valid_id_number,
    mask_account_number,
    mask_id_number,
    region_of,
    validate_id_number,
)


def make_id(region: str = "522701", born: str = "19800101", seq: str = "123") -> str:
    body = region + born + seq
    return body + calc_check_digit(body + "0")


def test_valid_number_round_trip():
    number = make_id()
    assert validate_id_number(number) == number
    assert birth_date_of(number) == date(1980, 1, 1)
    assert region_of(number) == "522701"
    assert is_valid_id_number(number)


def test_known_public_example():
    assert validate_id_number("360426199101010071") == "360426199101010071"


def test_compacts_lowercase_x_spaces_and_fullwidth():
    number = next(make_id(seq=f"{i:03d}") for i in range(1000) if make_id(seq=f"{i:03d}").endswith("X"))
    assert validate_id_number(number.lower()) == number
    spaced = f" {number[:6]} {number[6:14]} {number[14:]} "
    assert validate_id_number(spaced) == number
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in number)
    assert validate_id_number(fullwidth) == number


def test_bad_check_digit():
    number = make_id()
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    with pytest.raises(InvalidIdNumber, match="check digit"):
        validate_id_number(wrong)
    assert not is_valid_id_number(wrong)


@pytest.mark.parametrize("value, message", [
    ("52270119800101123", "18 characters"),
    ("5227011980010112345", "18 characters"),
    ("522701800101123", "15-digit"),
    ("52270119800101A234", "17 digits"),
    ("", "18 characters"),
])
def test_bad_length_or_format(value, message):
    with pytest.raises(InvalidIdNumber, match=message):
        validate_id_number(value)


@pytest.mark.parametrize("born", ["19800230", "19801301", "19810229", "19800000"])
def test_impossible_birth_dates(born):
    with pytest.raises(InvalidIdNumber, match="impossible birth date"):
        validate_id_number(make_id(born=born))


def test_leap_day_is_fine():
    assert birth_date_of(make_id(born="20000229")) == date(2000, 2, 29)


def test_future_and_too_old_birth_dates():
    with pytest.raises(InvalidIdNumber, match="future"):
        validate_id_number(make_id(born="20300101"))
    with pytest.raises(InvalidIdNumber, match="future"):
        validate_id_number(make_id(born="20260502"), today=date(2026, 5, 1))
    assert validate_id_number(make_id(born="20260501"), today=date(2026, 5, 1))
    with pytest.raises(InvalidIdNumber, match="before 1900"):
        validate_id_number(make_id(born="18991231"))


def test_accessors_reject_invalid_numbers():
    with pytest.raises(InvalidIdNumber):
        birth_date_of("123")
    with pytest.raises(InvalidIdNumber):
        region_of(make_id()[:-1] + "Y")


def test_mask_id_number_hides_birth_date():
    number = "522701198001011234"
    masked = mask_id_number(number)
    assert masked == "522***********1234"
    assert len(masked) == len(number) and "19800101" not in masked


def test_mask_malformed_keeps_last_two():
    assert mask_id_number("52270119800101") == "************01"
    assert mask_id_number("ab") == "**"
    assert mask_id_number("") == ""


@given(st.text(max_size=40))
def test_mask_never_changes_length_and_never_shows_birth_date(value):
    masked = mask_id_number(value)
    assert len(masked) == len(value)
    if len(value) >= 16:
        assert masked[3:14].strip("*") == ""
    assert sum(1 for c in masked if c != "*") <= 7


def test_mask_account_number():
    assert mask_account_number("6222021234567890123") == "***************0123"
    assert mask_account_number("1234") == "****"
    assert mask_account_number("") == ""
