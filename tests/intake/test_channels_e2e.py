"""Each door of I1 end to end over the bus with the whole embedded system: intake accepts and
dispatches, eligibility really opens the case, and DecisionMade / DisbursementPaid (published
on the shared InProcessBus as eligibility and payments would) finish the timeline."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
import pytest_asyncio

from services.embedded import build_apps
from shared.events.intake import ApplicationSubmitted
from tests.intake.conftest import decision, events, paid, publish, steps
from tests.support import application_body, auth, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOORS = {
    "hotline_12345": auth("hotline_operator", sub="op-1"),
    "e_jiuzhu": auth("applicant", sub="wx-42"),
    "window": auth("township_clerk", sub="clerk-1"),
    "active_discovery": auth("village_coordinator", region="522701001000", sub="coord-1"),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    apps = build_apps(Path(tmp_path_factory.mktemp("embedded")), gc_freeze_on_start=False)
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["intake"]), base_url="http://intake"))
        yield {"apps": apps, "client": client}


@pytest.mark.parametrize("channel", list(DOORS))
async def test_each_door_end_to_end(system: dict[str, Any], channel: str) -> None:
    client, intake_app = system["client"], system["apps"]["intake"]
    headers = DOORS[channel]
    seq = 100 + list(DOORS).index(channel)
    r = await client.post("/v1/applications", json=application_body(seq=seq, channel=channel), headers=headers)
    assert r.status_code == 201, r.text
    out = r.json()
    aid = out["application_id"]
    assert out["status"] == "accepted" and out["missing_documents"] == [] and out["due_by"]
    if channel == "hotline_12345":
        assert out["channel_ref"] == f"WO-{seq:06d}"
    if channel == "active_discovery":
        assert "主动发现 by grid_worker 王五" in out["timeline"][0]["detail"]   # who, where, when

    async def case_opened() -> dict[str, Any] | None:
        got = (await client.get(f"/v1/applications/{aid}", headers=headers)).json()
        return got if got["case_id"] else None
    out = await eventually(case_opened, timeout=15)
    assert out["status"] == "under_review"
    submitted = [e for e in await events(intake_app, ApplicationSubmitted.TYPE) if e["data"]["application_id"] == aid]
    assert len(submitted) == 1 and submitted[0]["data"]["channel"] == channel

    await publish(intake_app, decision(out, monthly="700.00"), aid, source="eligibility")
    out = (await client.get(f"/v1/applications/{aid}", headers=headers)).json()
    await publish(intake_app, paid(out, "700.00"), aid, source="payments")
    out = (await client.get(f"/v1/applications/{aid}", headers=headers)).json()
    assert steps(out) == ["received", "accepted", "dispatched", "under_review", "decided", "feedback",
                          "paid", "feedback", "closed"]
    assert out["status"] == "closed"
    ats = [s["at"] for s in out["timeline"]]
    assert ats == sorted(ats)

    feedback = (await client.get("/v1/channel-feedback", headers=auth("county_civil_affairs"))).json()
    mine = [f for f in feedback if f["application_id"] == aid]
    # Only 12345 has a platform to call back; the others read the timeline (e救助, window, coordinator).
    assert len(mine) == (2 if channel == "hotline_12345" else 0)
