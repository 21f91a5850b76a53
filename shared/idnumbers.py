"""Resident identity card numbers (居民身份证号, GB 11643-1999) and account-number masking.

Validation uses ``stdnum.cn.ric`` for the check digit; the birth-place lookup in stdnum's
region table is deliberately skipped, because that table lags behind new and renamed
counties and a real applicant must never be refused for our stale data.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta, timezone

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

# ASCII only: \d would also accept other scripts' digits.
_FORMAT = re.compile(r"^[0-9]{17}[0-9X]$")
_CHINA_TIME = timezone(timedelta(hours=8))
_EARLIEST_BIRTH = date(1900, 1, 1)


class InvalidIdNumber(ValueError):
    """The value is not a valid 18-character 居民身份证号; the message says why."""


def validate_id_number(value: str, *, today: date | None = None) -> str:
    """The compact upper-case 18-character number, or :class:`InvalidIdNumber`."""
    if not isinstance(value, str):
        raise InvalidIdNumber("identity number must be a string")
    # Chinese input methods often produce full-width digits (１２３, Ｘ); NFKC maps them to ASCII.
    number = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", value)).upper()
    if len(number) == 15:
        raise InvalidIdNumber("15-digit first-generation numbers are not accepted; give the 18-character number")
    if len(number) != 18:
        raise InvalidIdNumber(f"identity number must have 18 characters, got {len(number)}")
    if not _FORMAT.match(number):
        raise InvalidIdNumber("identity number must be 17 digits followed by a digit or X")
    if number[-1] != ric.calc_check_digit(number):
        raise InvalidIdNumber("identity number check digit does not match (mistyped number?)")
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        raise InvalidIdNumber("identity number contains an impossible birth date") from None
    today = today or datetime.now(_CHINA_TIME).date()
    if born > today:
        raise InvalidIdNumber("identity number contains a birth date in the future")
    if born < _EARLIEST_BIRTH:
        raise InvalidIdNumber("identity number contains a birth date before 1900")
    return number


def is_valid_id_number(value: str) -> bool:
    try:
        validate_id_number(value)
    except InvalidIdNumber:
        return False
    return True


def birth_date_of(id_number: str) -> date:
    """Birth date encoded in a valid number (digits 7–14)."""
    number = validate_id_number(id_number)
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def region_of(id_number: str) -> str:
    """The 6-digit administrative division code of first registration (digits 1–6)."""
    return validate_id_number(id_number)[:6]


def mask_id_number(value: str) -> str:
    """``522***********1234``: first 3 and last 4 kept, so the birth date never shows.

    Anything that is not shaped like an 18-character number keeps only its last 2 characters.
    The result always has the input's length.
    """
    if _FORMAT.match(value.upper()):
        return value[:3] + "*" * 11 + value[-4:]
    return _mask_keep_tail(value, 2)


def mask_account_number(value: str) -> str:
    """A bank or payment account number with only its last 4 characters visible."""
    return _mask_keep_tail(value, 4)


def _mask_keep_tail(value: str, keep: int) -> str:
    # A value no longer than what we would keep is masked entirely: showing it would show it all.
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]
