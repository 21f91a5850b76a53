"""一次性告知 (I3): every missing document is named at once, from per-region checklist data."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from shared.auth import region_prefix

_DATA = Path(__file__).resolve().parent.parent / "data" / "document_checklists.json"


@dataclass(frozen=True)
class Checklist:
    labels: dict[str, str]
    regions: dict[str, dict[str, list[str]]]
    # (program, region) → required codes; the data is immutable once loaded.
    _cache: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def required(self, program: str, region_code: str) -> list[str]:
        """The nearest region (self, township, county, city, province, national) with a list wins."""
        return list(self._required(program, region_code))

    def _required(self, program: str, region_code: str) -> tuple[str, ...]:
        key = (program, region_code)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        best: tuple[int, list[str]] | None = None
        for code, programs in self.regions.items():
            if program not in programs:
                continue
            prefix = "" if code == "000000000000" else region_prefix(code)
            if region_code.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), programs[program])
        result = tuple(best[1]) if best else ()
        if len(self._cache) > 8192:
            self._cache.clear()
        self._cache[key] = result
        return result

    def missing(self, program: str, region_code: str, provided: list[str] | set[str]) -> list[str]:
        have = set(provided)
        return [doc for doc in self._required(program, region_code) if doc not in have]

    def describe(self, codes: list[str]) -> list[dict[str, str]]:
        return [{"code": c, "name": self.labels.get(c, c)} for c in codes]


@lru_cache(maxsize=1)
def load_checklist(path: Path = _DATA) -> Checklist:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Checklist(labels=raw["labels"], regions=raw["regions"])
