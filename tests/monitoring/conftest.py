"""Fixtures of monitoring's tests."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """For tests whose subject does not depend on the database (auth, validation, parsing)."""
    yield f"sqlite+aiosqlite:///{tmp_path}/monitoring.db"
