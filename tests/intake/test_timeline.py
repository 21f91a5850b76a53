"""The status timeline (I2 反馈) fed by other services' events: received → accepted →
dispatched → under_review → decided → paid → closed with feedback; denied and transferred
decisions are 转办 (I2, L5) and close too. Redelivered events change nothing."""
from __future__ import annotations

from services.intake.models import application_steps, transfers
from shared.events.intake import ApplicationTransferred
from tests.intake.conftest import case_opened, count, decision, events, intake, paid, publish, steps
from tests.support import application_body, auth

CLERK = auth("township_clerk")


async def _get(client, aid: str) -> dict:  # type: ignore[no-untyped-def]
    r = await client.get(f"/v1/applications/{aid}", headers=CLERK)
    assert r.status_code == 200, r.text
    return r.json()


async def test_decided_paid_closed_then_the_person_may_apply_again(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        out = (await client.post("/v1/applications", json=application_body(), headers=CLERK)).json()
        aid = out["application_id"]
        opened = case_opened(out)
        env = await publish(app, opened, aid)
        out = await _get(client, aid)
        assert out["status"] == "under_review" and out["case_id"] == opened.case_id
        await publish(app, opened, aid, event_id=env.id)   # redelivery: skipped by the inbox
        assert steps(await _get(client, aid)).count("under_review") == 1

        await publish(app, decision(out, monthly="812.50"), aid)
        out = await _get(client, aid)
        assert out["status"] == "decided"
        assert out["decision"]["outcome"] == "approved" and out["decision"]["monthly_amount"] == "812.50"
        decided = next(s for s in out["timeline"] if s["step"] == "decided")
        assert "812.50" in decided["detail"] and decided["actor"] == "eligibility:clerk-1"
        assert steps(out)[-1] == "feedback" and "812.50" in out["timeline"][-1]["detail"]
        assert out["step_due_by"] is not None  # decided → paid has its own clock

        await publish(app, paid(out, "812.50"), aid)
        out = await _get(client, aid)
        assert steps(out) == ["received", "accepted", "dispatched", "under_review", "decided", "feedback",
                              "paid", "feedback", "closed"]
        assert out["status"] == "closed" and out["closed_at"] and out["step_due_by"] is None
        assert all(s["at"] and s["actor"] for s in out["timeline"])
        # Closed: the same person may apply for the same program again.
        again = await client.post("/v1/applications", json=application_body(), headers=CLERK)
        assert again.status_code == 201 and again.json()["application_id"] != aid


async def test_denied_goes_to_rural_revitalization_and_transferred_to_its_department(database_url: str) -> None:
    """I2/L5: not eligible → 转办 rural revitalization; outcome transferred → the named department."""
    async with intake(database_url) as (app, client):
        a = (await client.post("/v1/applications", json=application_body(seq=1), headers=CLERK)).json()
        b = (await client.post("/v1/applications", json=application_body(seq=2), headers=CLERK)).json()
        d = decision(a, "denied", monthly=None)
        await publish(app, d, a["application_id"])
        await publish(app, d, a["application_id"])  # the same decision re-sent under a new event id
        await publish(app, decision(b, "transferred", monthly=None, department="medical"), b["application_id"])
        a, b = await _get(client, a["application_id"]), await _get(client, b["application_id"])
        assert steps(a) == ["received", "accepted", "dispatched", "decided", "transferred", "feedback", "closed"]
        assert a["status"] == "closed" and a["transfers"][0]["department"] == "rural_revitalization"
        assert a["transfers"][0]["source"] == "decision"
        assert b["transfers"][0]["department"] == "medical"
        moved = await events(app, ApplicationTransferred.TYPE)
        assert [(e["data"]["application_id"], e["data"]["department"]) for e in moved] == [
            (a["application_id"], "rural_revitalization"), (b["application_id"], "medical")]
        assert await count(app, transfers) == 2


async def test_staged_payments_close_after_the_last_stage(database_url: str) -> None:
    """L4 一次审批、分阶段救助: one decision, several payouts; the case closes with the last."""
    async with intake(database_url) as (app, client):
        out = (await client.post("/v1/applications", json=application_body(program="linshi"), headers=CLERK)).json()
        aid = out["application_id"]
        await publish(app, decision(out, monthly=None, one_time="1200.00", staged=["600.00", "600.00"]), aid)
        await publish(app, paid(out, "600.00"), aid)
        assert (await _get(client, aid))["status"] == "paid"
        await publish(app, paid(out, "600.00"), aid)
        out = await _get(client, aid)
        assert out["status"] == "closed" and steps(out).count("paid") == 2


async def test_events_for_unknown_applications_are_ignored(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        ghost = {"application_id": "00000000-0000-0000-0000-000000000000", "program": "dibao",
                 "channel": "window", "region_code": "522701001000", "handling_region_code": "522701001000"}
        await publish(app, case_opened(ghost), ghost["application_id"])
        await publish(app, decision(ghost), ghost["application_id"])
        await publish(app, paid(ghost), ghost["application_id"])
        assert await count(app, application_steps) == 0
