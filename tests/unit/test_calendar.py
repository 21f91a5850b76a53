import json
from datetime import date, datetime, timedelta, timezone

import chinese_calendar
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shared.calendar import (
    DATA_DIR,
    CalendarDataError,
    CalendarYearMissing,
    Deadline,
    WorkingCalendar,
    default_calendar,
    to_shanghai_date,
)


def _makeup_days(year: int) -> list[date]:
    d, out = date(year, 1, 1), []
    while d.year == year:
        if d.weekday() >= 5 and chinese_calendar.is_workday(d):
            out.append(d)
        d += timedelta(days=1)
    return out


def _provisional_count(year: int) -> float:
    return REGISTRY.get_sample_value("calendar_provisional_deadlines_total", {"year": str(year)}) or 0.0


@pytest.fixture
def cal(tmp_path):
    # An empty data dir: the tests must not depend on files someone adds to shared/data later.
    return WorkingCalendar(data_dir=tmp_path / "none")


@pytest.fixture
def file_2027(tmp_path):
    # Test data only, NOT the official 2027 arrangement.
    path = tmp_path / "2027.json"
    path.write_text(json.dumps({
        "year": 2027,
        "holidays": ["2027-01-01", "2027-01-04"],
        "workdays": ["2027-01-09"],
    }))
    return path


def test_national_day_2026(cal):
    for day in range(1, 8):
        assert not cal.is_workday(date(2026, 10, day))
    assert cal.is_workday(date(2026, 10, 8))
    makeups = [d for d in _makeup_days(2026) if d.month in (9, 10)]
    assert makeups  # the library lists 调休 days around National Day 2026
    for d in makeups:
        assert d.weekday() >= 5 and cal.is_workday(d)


def test_makeup_saturday_counts_as_working_day(cal):
    saturday = date(2026, 10, 10)
    assert saturday.weekday() == 5 and chinese_calendar.is_workday(saturday)
    # Fri 10-09 is working; the next working day after it is that Saturday, not Mon 10-12.
    assert cal.add_working_days(date(2026, 10, 9), 1) == Deadline(saturday, False)
    assert cal.working_days_between(date(2026, 10, 9), date(2026, 10, 12)) == 2


def test_five_working_days_across_spring_festival_2026(cal):
    start = date(2026, 2, 12)  # Thursday before the holiday
    expected, d, left = None, start, 5
    while left:  # independent recount straight from the library
        d += timedelta(days=1)
        left -= chinese_calendar.is_workday(d)
    expected = d
    result = cal.add_working_days(start, 5)
    assert result == Deadline(expected, False)
    # Fri 13, Sat 14 (调休), then the holiday to Mon 23: Tue 24, Wed 25, Thu 26.
    assert result.due == date(2026, 2, 26)


def test_start_day_never_counts(cal):
    assert cal.add_working_days(date(2026, 3, 2), 1).due == date(2026, 3, 3)
    assert cal.add_working_days(date(2026, 3, 2), 0).due == date(2026, 3, 2)
    with pytest.raises(ValueError):
        cal.add_working_days(date(2026, 3, 2), -1)


def test_datetimes_use_shanghai_date(cal):
    # 2026-03-02 17:00 UTC is already Tuesday 01:00 in Shanghai.
    assert to_shanghai_date(datetime(2026, 3, 2, 17, 0)) == date(2026, 3, 3)
    assert to_shanghai_date(datetime(2026, 3, 2, 15, 59, tzinfo=timezone.utc)) == date(2026, 3, 2)
    assert cal.add_working_days(datetime(2026, 3, 2, 17, 0, tzinfo=timezone.utc), 1).due == date(2026, 3, 4)


def test_year_end_deadline_into_2027_is_provisional(cal):
    before = _provisional_count(2027)
    with capture_logs() as logs:
        first = cal.add_working_days(date(2026, 12, 28), 5)
        second = cal.add_working_days(date(2026, 12, 28), 5)
    # Tue 29, Wed 30, Thu 31, then Mon-Fri counting: Fri 2027-01-01, Mon 01-04.
    assert first == second == Deadline(date(2027, 1, 4), True)
    warnings = [e for e in logs if e["event"] == "calendar_year_missing"]
    assert len(warnings) == 1 and warnings[0]["year"] == 2027
    assert _provisional_count(2027) == before + 2


def test_deadline_inside_known_year_is_not_provisional(cal):
    assert cal.add_working_days(date(2026, 12, 28), 3) == Deadline(date(2026, 12, 31), False)


def test_loading_2027_file_makes_deadline_final(tmp_path, file_2027):
    cal = WorkingCalendar(extra_files=[file_2027], data_dir=tmp_path / "none")
    # 29, 30, 31, then 01-01 and 01-04 are holidays: Tue 01-05, Wed 01-06.
    assert cal.add_working_days(date(2026, 12, 28), 5) == Deadline(date(2027, 1, 6), False)
    # Make-up Saturday 01-09 counts: Fri 01-08 + 1 working day.
    assert cal.add_working_days(date(2027, 1, 8), 1) == Deadline(date(2027, 1, 9), False)
    assert cal.is_workday(date(2027, 1, 5)) and not cal.is_workday(date(2027, 1, 10))


def test_load_file_at_run_time_recomputes(cal, file_2027):
    assert cal.add_working_days(date(2026, 12, 28), 5).provisional
    cal.load_file(file_2027)
    assert cal.add_working_days(date(2026, 12, 28), 5) == Deadline(date(2027, 1, 6), False)


def test_data_dir_files_are_loaded(tmp_path, file_2027):
    cal = WorkingCalendar(data_dir=tmp_path)
    assert cal.has_year(2027) and not cal.has_year(2028)


def test_strict_variants_raise(cal):
    with pytest.raises(CalendarYearMissing) as exc:
        cal.add_working_days_strict(date(2026, 12, 28), 5)
    assert exc.value.year == 2027
    assert "2027" in str(exc.value) and "load_file" in str(exc.value)
    assert isinstance(exc.value, LookupError)
    with pytest.raises(CalendarYearMissing):
        cal.is_workday(date(2027, 1, 4))
    with pytest.raises(CalendarYearMissing):
        cal.working_days_between(date(2026, 12, 28), date(2027, 1, 4))
    assert cal.add_working_days_strict(date(2026, 12, 28), 3) == date(2026, 12, 31)


def test_working_days_between(cal):
    assert cal.working_days_between(date(2026, 9, 30), date(2026, 10, 8)) == 1
    assert cal.working_days_between(date(2026, 10, 8), date(2026, 9, 30)) == -1
    assert cal.working_days_between(date(2026, 3, 2), date(2026, 3, 2)) == 0


@pytest.mark.parametrize("content, message", [
    ({"holidays": []}, "year"),
    ({"year": 2027, "holidays": ["2028-01-01"]}, "not in 2027"),
    ({"year": 2027, "holidays": ["01/01/2027"]}, "YYYY-MM-DD"),
    ({"year": 2027, "workdays": ["2027-01-05"]}, "not weekend"),
    ({"year": 2027, "holidays": ["2027-01-09"], "workdays": ["2027-01-09"]}, "both"),
    ({"year": 2027, "holiday": []}, "unknown keys"),
])
def test_bad_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(CalendarDataError, match=message):
        WorkingCalendar(extra_files=[path], data_dir=tmp_path / "none")


def test_default_calendar_is_cached_and_ships_no_guessed_years():
    assert default_calendar() is default_calendar()
    assert DATA_DIR.is_dir() and (DATA_DIR / "README.md").exists()
    assert not default_calendar().has_year(2027)


def test_working_days_between_can_count_a_missing_year_weekdays_only():
    """For clocks shown to people: a year without data counts Mon–Fri instead of failing."""
    from datetime import date

    from shared.calendar import WorkingCalendar
    cal = WorkingCalendar()
    # 2026-12-31 (Thu) → 2027-01-08 (Fri): 2027-01-01..08 has 6 weekdays; 2027 has no data yet.
    assert cal.working_days_between(date(2026, 12, 31), date(2027, 1, 8), strict=False) == 6
    with pytest.raises(CalendarYearMissing):
        cal.working_days_between(date(2026, 12, 31), date(2027, 1, 8))
