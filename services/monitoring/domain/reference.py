"""M4 防漏 reference income lines per region and date (pure; nearest region with a line in force)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).resolve().parent.parent / "data" / "reference_lines.json"
_LEVELS = (12, 9, 6, 4, 2, 0)


@dataclass(frozen=True)
class ReferenceLines:
    # prefix ("" = national) → [(effective_from, monthly line)] sorted by date
    lines: dict[str, tuple[tuple[date, Decimal], ...]]

    def line(self, region_code: str, on: date) -> Decimal | None:
        for n in _LEVELS:
            versions = self.lines.get(region_code[:n]) if len(region_code) >= n else None
            if not versions:
                continue
            best = None
            for start, value in versions:
                if start <= on:
                    best = value
            if best is not None:
                return best
        return None

    def looks_eligible(self, region_code: str | None, on: date, monthly_pci: Decimal | None,
                       labor_capacity: str | None) -> bool:
        """M4: income below the local 低保 line, or no labor capacity (脱贫人口 who lost it: D4)."""
        if labor_capacity == "none":
            return True
        if monthly_pci is None or not region_code:
            return False
        line = self.line(region_code, on)
        return line is not None and monthly_pci < line


def _prefix(code: str) -> str:
    if code == "000000000000":
        return ""
    stripped = code.rstrip("0")
    for n in (2, 4, 6, 9, 12):
        if len(stripped) <= n:
            return code[:n]
    return code


@lru_cache(maxsize=4)
def load_reference_lines(path: Path = _DATA) -> ReferenceLines:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    acc: dict[str, list[tuple[date, Decimal]]] = {}
    for item in raw["lines"]:
        acc.setdefault(_prefix(item["region_code"]), []).append(
            (date.fromisoformat(item["effective_from"]), Decimal(item["monthly"])))
    return ReferenceLines({k: tuple(sorted(v)) for k, v in acc.items()})
