"""Indicators computed from counts (pure)."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CHANNELS = ("hotline_12345", "e_jiuzhu", "window", "active_discovery")
ACTIVE_DISCOVERY_TARGET = Decimal("0.50")  # I5, QN 二(三): ≥ 50% of the year's new cases


def active_discovery_share(by_channel: dict[str, int]) -> dict[str, object]:
    total = sum(by_channel.values())
    found = by_channel.get("active_discovery", 0)
    share = (Decimal(found) / Decimal(total)).quantize(Decimal("0.0001"), ROUND_HALF_UP) if total else None
    return {
        "rule": "I5", "total_new_cases": total, "active_discovery": found,
        "share": str(share) if share is not None else None, "target": str(ACTIVE_DISCOVERY_TARGET),
        "meets_target": bool(share is not None and share >= ACTIVE_DISCOVERY_TARGET),
    }


def share(part: int, whole: int) -> str | None:
    """``part / whole`` to four places, as a string; None when there is nothing to divide."""
    if not whole:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP))
