"""Region scopes as B-tree ranges: codes inside a region are the strings in [prefix, prefix+1),
so an index on the code serves them (a LIKE 'prefix%' would not under a non-C collation)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def within(column: Any, prefix: str) -> sa.ColumnElement[bool]:
    """``column`` is a 12-digit region code inside the region whose significant digits are ``prefix``."""
    if not prefix:
        return sa.true()
    if set(prefix) == {"9"}:
        return column >= prefix
    upper = str(int(prefix) + 1).zfill(len(prefix))
    return sa.and_(column >= prefix, column < upper)
