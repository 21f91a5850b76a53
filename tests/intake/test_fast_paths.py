"""The hot path's shortcuts are the kernel's rules, only faster: the ID shortcut accepts exactly
what shared.idnumbers returns unchanged, and the memoised working days equal the calendar's."""
from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings, strategies as st
from stdnum.cn import ric

from shared.calendar import WorkingDays
from services.intake.schemas import canonical_id_number
from services.intake.service import new_id
from shared.calendar import default_calendar
from shared.idnumbers import InvalidIdNumber, validate_id_number


def _kernel_keeps(value: str) -> bool:
    try:
        return validate_id_number(value) == value
    except InvalidIdNumber:
        return False


@settings(max_examples=400, deadline=None)
@given(born=st.dates(date(1890, 1, 1), date(2030, 12, 31)), seq=st.integers(0, 999),
       region=st.sampled_from(["522701", "110101", "000000"]), tamper=st.sampled_from(["", "check", "x", "wide"]))
def test_id_shortcut_agrees_with_the_kernel(born: date, seq: int, region: str, tamper: str) -> None:
    body = f"{region}{born:%Y%m%d}{seq:03d}"
    number = body + ric.calc_check_digit(body + "0")
    if tamper == "check":
        number = number[:-1] + ("0" if number[-1] != "0" else "1")
    elif tamper == "x":
        number = number.lower()
    elif tamper == "wide":
        number = number.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert canonical_id_number(number) == _kernel_keeps(number)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_id_shortcut_never_accepts_what_the_kernel_refuses(text: str) -> None:
    if canonical_id_number(text):
        assert _kernel_keeps(text)


def test_memoised_working_days_equal_the_calendar() -> None:
    cal = default_calendar()
    days = WorkingDays(cal)
    start = date(2026, 1, 1)
    for i in range(0, 365, 3):
        for n in (1, 5, 30):
            d = start + timedelta(days=i)
            assert days.add(d, n) == cal.add_working_days(d, n) == days.add(d, n)


def test_new_ids_are_version_4_uuids() -> None:
    import uuid
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)
