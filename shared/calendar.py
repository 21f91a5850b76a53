"""The official working-day calendar (工作日历) of the PRC, in Asia/Shanghai.

Statutory holidays (法定节假日) and make-up working days (调休上班) come from the
``chinese-calendar`` package for the years it covers, and from JSON files (format in
``shared/data/calendar/README.md``) for years the State Council published later.

Deadlines may need a year nobody has data for yet. :meth:`WorkingCalendar.add_working_days`
then counts that year Monday–Friday, marks the :class:`Deadline` provisional, logs
``calendar_year_missing`` and counts it in ``calendar_provisional_deadlines_total``, so the
deadline can be recomputed when the data is loaded. The strict methods raise
:class:`CalendarYearMissing` instead.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import chinese_calendar
import structlog
from chinese_calendar.constants import holidays as _library_holidays
from prometheus_client import Counter

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    SHANGHAI = ZoneInfo("Asia/Shanghai")
except (ImportError, ZoneInfoNotFoundError):  # pragma: no cover - images without tzdata
    # China has kept UTC+8 without daylight saving since 1991, so the fixed offset is exact
    # for every date this platform handles.
    SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # type: ignore[assignment]

DATA_DIR = Path(__file__).parent / "data" / "calendar"
LIBRARY_YEARS = range(min(_library_holidays).year, max(_library_holidays).year + 1)

CALENDAR_PROVISIONAL_DEADLINES = Counter(
    "calendar_provisional_deadlines_total",
    "Deadlines computed weekends-only because the official calendar of a year is not loaded",
    ["year"],
)



def _log() -> structlog.typing.FilteringBoundLogger:
    # A fresh proxy per call: a cached first-use logger would escape structlog.testing.capture_logs.
    return structlog.get_logger("calendar")


class CalendarYearMissing(LookupError):
    """No official calendar is loaded for ``year``."""

    def __init__(self, year: int):
        self.year = year
        super().__init__(
            f"no official working-day calendar for {year}: chinese-calendar covers "
            f"{LIBRARY_YEARS.start}-{LIBRARY_YEARS.stop - 1}; once the State Council publishes the "
            f"{year} holiday notice, add shared/data/calendar/{year}.json (format in "
            f"shared/data/calendar/README.md) or load it with WorkingCalendar.load_file()"
        )


class CalendarDataError(ValueError):
    """A calendar data file is malformed or contradicts itself."""


@dataclass(frozen=True)
class Deadline:
    """A due date; ``provisional`` when some year on the way was counted weekends-only."""

    due: date
    provisional: bool


@dataclass(frozen=True)
class YearData:
    """One year's published arrangement: days off on weekdays and working weekend days."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    source: str = ""

    def is_workday(self, d: date) -> bool:
        return d in self.workdays or (d.weekday() < 5 and d not in self.holidays)


_ALLOWED_KEYS = {"year", "holidays", "workdays", "source", "note"}


def _parse_dates(path: Path, year: int, key: str, raw: object) -> frozenset[date]:
    if not isinstance(raw, list):
        raise CalendarDataError(f"{path}: '{key}' must be a list of YYYY-MM-DD strings")
    out = set()
    for item in raw:
        try:
            d = date.fromisoformat(item) if isinstance(item, str) and len(item) == 10 else None
        except ValueError:
            d = None
        if d is None:
            raise CalendarDataError(f"{path}: '{key}' has {item!r}, not a YYYY-MM-DD date")
        if d.year != year:
            # A year's file must describe exactly that year, or "the year is loaded" would lie.
            raise CalendarDataError(f"{path}: {item} in '{key}' is not in {year}; put it in the {d.year} file")
        out.add(d)
    return frozenset(out)


def load_year_file(path: Path) -> YearData:
    """Read and check one ``{"year", "holidays", "workdays"}`` file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalendarDataError(f"{path}: cannot read calendar data: {exc}") from exc
    if not isinstance(raw, dict):
        raise CalendarDataError(f"{path}: expected a JSON object")
    unknown = set(raw) - _ALLOWED_KEYS
    if unknown:
        raise CalendarDataError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_ALLOWED_KEYS)}")
    year = raw.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not 1949 < year < 10000:
        raise CalendarDataError(f"{path}: 'year' must be an integer year")
    hol = _parse_dates(path, year, "holidays", raw.get("holidays", []))
    work = _parse_dates(path, year, "workdays", raw.get("workdays", []))
    both = hol & work
    if both:
        raise CalendarDataError(f"{path}: {sorted(map(str, both))} listed as both holiday and workday")
    weekdays = sorted(str(d) for d in work if d.weekday() < 5)
    if weekdays:
        # Weekdays are working days anyway; listing one is almost certainly a typo.
        raise CalendarDataError(f"{path}: workdays {weekdays} are not weekend days (only 调休 weekends go there)")
    source = raw.get("source", "")
    return YearData(year=year, holidays=hol, workdays=work, source=str(source))


def to_shanghai_date(moment: date | datetime) -> date:
    """The calendar date in Asia/Shanghai; naive datetimes are taken as UTC (how we store them)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(SHANGHAI).date()
    if isinstance(moment, date):
        return moment
    raise TypeError(f"expected a date or datetime, got {type(moment).__name__}")


class WorkingCalendar:
    """Working days from chinese-calendar plus JSON year files; a file wins for its year."""

    def __init__(self, extra_files: Iterable[Path] = (), data_dir: Path | None = None):
        self._years: dict[int, YearData] = {}
        self._warned: set[int] = set()
        self._lock = threading.Lock()
        directory = DATA_DIR if data_dir is None else Path(data_dir)
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        for path in [*files, *map(Path, extra_files)]:
            self.load_file(path)

    def load_file(self, path: Path) -> YearData:
        """Add one year's data (e.g. when the State Council publishes it); later deadlines use it."""
        data = load_year_file(path)
        with self._lock:
            existing = self._years.get(data.year)
            if existing is not None and existing != data:
                raise CalendarDataError(f"{path}: {data.year} is already loaded with different days")
            self._years[data.year] = data
            self._warned.discard(data.year)
        _log().info("calendar_year_loaded", year=data.year, path=str(path), source=data.source)
        return data

    def has_year(self, year: int) -> bool:
        return year in self._years or year in LIBRARY_YEARS

    def years_loaded(self) -> list[int]:
        return sorted(set(self._years) | set(LIBRARY_YEARS))

    def is_workday(self, d: date) -> bool:
        """True on a working day; raises :class:`CalendarYearMissing` for a year without data."""
        if isinstance(d, datetime):
            d = to_shanghai_date(d)
        data = self._years.get(d.year)
        if data is not None:
            return data.is_workday(d)
        if d.year in LIBRARY_YEARS:
            return bool(chinese_calendar.is_workday(d))
        raise CalendarYearMissing(d.year)

    def add_working_days(self, start: date | datetime, n: int) -> Deadline:
        """The n-th working day after ``start`` (which never counts itself); never raises for a missing year."""
        due, missing = self._walk(start, n, strict=False)
        for year in sorted(missing):
            CALENDAR_PROVISIONAL_DEADLINES.labels(year=str(year)).inc()
            self._warn_once(year)
        return Deadline(due=due, provisional=bool(missing))

    def add_working_days_strict(self, start: date | datetime, n: int) -> date:
        """Like :meth:`add_working_days` but raises :class:`CalendarYearMissing` instead of guessing."""
        due, _ = self._walk(start, n, strict=True)
        return due

    def working_days_between(self, start: date | datetime, end: date | datetime, *, strict: bool = True) -> int:
        """Working days in (start, end]; negative when ``end`` is before ``start``. Raises on a missing
        year unless ``strict=False``, which counts such a year Monday–Friday (logged once, like
        provisional deadlines)."""
        a, b = to_shanghai_date(start), to_shanghai_date(end)
        if b < a:
            return -self.working_days_between(b, a, strict=strict)
        count = 0
        day = a
        while day < b:
            day += timedelta(days=1)
            if strict or self.has_year(day.year):
                count += self.is_workday(day)
            else:
                self._warn_once(day.year)
                count += day.weekday() < 5
        return count

    def _walk(self, start: date | datetime, n: int, *, strict: bool) -> tuple[date, set[int]]:
        if n < 0:
            raise ValueError("n must be zero or positive")
        day = to_shanghai_date(start)
        missing: set[int] = set()
        remaining = n
        while remaining > 0:
            day += timedelta(days=1)
            if strict or self.has_year(day.year):
                working = self.is_workday(day)
            else:
                missing.add(day.year)
                working = day.weekday() < 5
            remaining -= working
        return day, missing

    def _warn_once(self, year: int) -> None:
        with self._lock:
            if year in self._warned:
                return
            self._warned.add(year)
        _log().warning("calendar_year_missing", year=year,
                    detail=f"deadlines in {year} counted Monday-Friday and marked provisional; "
                           f"load the {year} calendar to make them final")


class WorkingDays:
    """``calendar.add_working_days`` memoised per (start date, n): hot paths (intake's
    submissions, payments' clocks) ask the same question thousands of times a day. A provisional
    answer is recomputed once the year's official calendar has been loaded."""

    def __init__(self, calendar: WorkingCalendar, max_entries: int = 4096) -> None:
        self.calendar = calendar
        self.max_entries = max_entries
        self._memo: dict[tuple[date, int], Deadline] = {}

    def add(self, start: date | datetime, n: int) -> Deadline:
        day = to_shanghai_date(start)
        key = (day, n)
        hit = self._memo.get(key)
        if hit is not None and not (hit.provisional and self.calendar.has_year(hit.due.year)):
            return hit
        result = self.calendar.add_working_days(day, n)
        if len(self._memo) >= self.max_entries:
            self._memo.clear()
        self._memo[key] = result
        return result


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """The process-wide calendar with the bundled data files (load more with ``load_file``)."""
    return WorkingCalendar()
