"""Reporting periods: ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-Hn``, and M7 report due dates (pure)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4])|H([12]))$")


@dataclass(frozen=True)
class Period:
    text: str
    kind: str  # month | quarter | half_year
    start: date
    end: date  # inclusive

    def months(self) -> list[str]:
        out, y, m = [], self.start.year, self.start.month
        while date(y, m, 1) <= self.end:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    @property
    def last_month(self) -> str:
        return f"{self.end.year:04d}-{self.end.month:02d}"


def _month_end(y: int, m: int) -> date:
    nxt = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
    return nxt - timedelta(days=1)


def parse_period(text: str) -> Period:
    """ValueError with a message fit for the caller when ``text`` is not a period."""
    m = _PERIOD.match(text or "")
    if not m:
        raise ValueError("must be YYYY-MM, YYYY-Qn (n = 1–4) or YYYY-Hn (n = 1–2)")
    year = int(m.group(1))
    if year < 2000 or year > 2100:
        raise ValueError("year must be between 2000 and 2100")
    if m.group(2):
        mo = int(m.group(2))
        return Period(text, "month", date(year, mo, 1), _month_end(year, mo))
    if m.group(3):
        q = int(m.group(3))
        first = 3 * (q - 1) + 1
        return Period(text, "quarter", date(year, first, 1), _month_end(year, first + 2))
    h = int(m.group(4))
    first = 1 if h == 1 else 7
    return Period(text, "half_year", date(year, first, 1), _month_end(year, first + 5))


def month_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


REPORT_KINDS = {"quarterly": "quarter", "half_yearly": "half_year"}


def report_due(kind: str, period: Period) -> dict[str, object]:
    """M7: quarterly reports are due before the 20th of the quarter's last month (GD 四(三));
    county half-yearly reports every June and December (QN 三(一)), i.e. by the end of the half."""
    last = period.end
    if kind == "quarterly":
        return {"rule": "M7", "due_before": date(last.year, last.month, 20).isoformat(),
                "source": "004_9a8ed5a80bd73913.txt 四(三)"}
    return {"rule": "M7", "due_by": last.isoformat(), "report_month": month_of(last),
            "source": "000_e289ce00f249d99f.txt 三(一)"}
