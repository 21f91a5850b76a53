"""分办 (I2, L1), 首问负责 (I3) and 转办 (I2) by officers."""
from __future__ import annotations

from services.intake.models import transfers
from shared.events.intake import ApplicationSubmitted, ApplicationTransferred
from tests.intake.conftest import count, events, intake, steps
from tests.support import application_body, auth

OTHER_TOWNSHIP = "522701002000"


async def test_dispatch_to_residence_or_where_the_hardship_happened(database_url: str) -> None:
    """低保/特困 to the township of residence; 临时救助 to where the hardship happened (L1),
    accepted there even from someone living elsewhere."""
    async with intake(database_url) as (app, client):
        r = await client.post("/v1/applications", json=application_body(seq=1, region="522701001003"),
                              headers=auth("township_clerk"))
        assert r.json()["handling_region_code"] == "522701001000"
        assert "of residence" in r.json()["timeline"][-1]["detail"]
        body = application_body(seq=2, program="linshi", region="522702003001")   # lives in another county
        body["hardship"]["place_region_code"] = "522701002005"
        # The clerk of the township where it happened may accept it although the person lives elsewhere.
        r = await client.post("/v1/applications", json=body, headers=auth("township_clerk", region=OTHER_TOWNSHIP))
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["handling_region_code"] == OTHER_TOWNSHIP and "(L1)" in out["timeline"][-1]["detail"]
        submitted = await events(app, ApplicationSubmitted.TYPE)
        assert submitted[-1]["data"]["handling_region_code"] == OTHER_TOWNSHIP
        # …and sees it, as does the county of residence.
        assert (await client.get(f"/v1/applications/{out['application_id']}",
                                 headers=auth("township_clerk", region=OTHER_TOWNSHIP))).status_code == 200
        assert (await client.get(f"/v1/applications/{out['application_id']}",
                                 headers=auth("county_civil_affairs", region="522702000000"))).status_code == 200


async def test_first_contact_owns_until_a_recorded_handoff(database_url: str) -> None:
    """首问负责: the hotline operator who took the call owns the case until handing it off."""
    async with intake(database_url) as (app, client):
        operator = auth("hotline_operator", sub="op-7")
        out = (await client.post("/v1/applications", json=application_body(channel="hotline_12345"),
                                 headers=operator)).json()
        aid = out["application_id"]
        assert (out["owner"], out["owner_role"]) == ("op-7", "hotline_operator")
        handoff = {"to_sub": "clerk-3", "to_role": "township_clerk", "reason": "需入户核查"}
        r = await client.post(f"/v1/applications/{aid}/handoff", json=handoff,
                              headers=auth("township_clerk", sub="clerk-9"))
        assert r.status_code == 403   # not the owner, not a supervisor
        r = await client.post(f"/v1/applications/{aid}/handoff", json=handoff, headers=operator)
        assert r.status_code == 200
        out = r.json()
        assert (out["owner"], out["owner_role"]) == ("clerk-3", "township_clerk")
        step = out["timeline"][-1]
        assert step["step"] == "handoff" and step["actor"] == "hotline_operator:op-7"
        assert "hotline_operator:op-7 → township_clerk:clerk-3: 需入户核查" == step["detail"]
        # The operator no longer owns it; a supervisor may still reassign.
        assert (await client.post(f"/v1/applications/{aid}/handoff", json=handoff, headers=operator)).status_code == 403
        r = await client.post(f"/v1/applications/{aid}/handoff", headers=auth("township_office_director"),
                              json={"to_sub": "clerk-4", "to_role": "township_clerk", "reason": "调岗"})
        assert r.status_code == 200 and r.json()["owner"] == "clerk-4"
        bad = await client.post(f"/v1/applications/{aid}/handoff", headers=auth("township_office_director"),
                                json={"to_sub": "x", "to_role": "applicant", "reason": "r"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to_role"

        # e救助: the township office owns it until a clerk claims it.
        mine = (await client.post("/v1/applications", json=application_body(seq=5, channel="e_jiuzhu"),
                                  headers=auth("applicant", sub="wx-1"))).json()
        assert mine["owner"] == "office:522701001000"
        r = await client.post(f"/v1/applications/{mine['application_id']}/handoff", headers=auth("township_clerk", sub="c1"),
                              json={"to_sub": "c1", "to_role": "township_clerk", "reason": "认领"})
        assert r.status_code == 200 and r.json()["owner"] == "c1"


async def test_officer_transfers(database_url: str) -> None:
    """转办 by an officer: a record, intake.application.transferred, and (by default) closed with feedback."""
    async with intake(database_url) as (app, client):
        clerk = auth("township_clerk")
        a = (await client.post("/v1/applications", json=application_body(seq=1), headers=clerk)).json()
        b = (await client.post("/v1/applications", json=application_body(seq=2), headers=clerk)).json()
        r = await client.post(f"/v1/applications/{a['application_id']}/transfers", headers=clerk,
                              json={"department": "housing", "reason": "危房改造"})
        assert r.status_code == 201
        out = r.json()
        assert out["status"] == "closed" and steps(out)[-3:] == ["transferred", "feedback", "closed"]
        assert out["transfers"][0]["department"] == "housing" and out["transfers"][0]["source"] == "officer"
        # A referral beside the application (协同办理) keeps it open.
        r = await client.post(f"/v1/applications/{b['application_id']}/transfers", headers=clerk,
                              json={"department": "education", "reason": "子女就学", "close": False})
        assert r.json()["status"] == "accepted" and steps(r.json())[-1] == "transferred"
        assert (await client.post(f"/v1/applications/{a['application_id']}/transfers", headers=clerk,
                                  json={"department": "medical", "reason": "x"})).status_code == 409
        assert (await client.post(f"/v1/applications/{b['application_id']}/transfers", headers=auth("hotline_operator"),
                                  json={"department": "medical", "reason": "x"})).status_code == 403
        assert (await client.post(f"/v1/applications/{b['application_id']}/transfers", headers=clerk,
                                  json={"department": "police", "reason": "x"})).status_code == 422
        moved = await events(app, ApplicationTransferred.TYPE)
        assert [e["data"]["department"] for e in moved] == ["housing", "education"]
        assert await count(app, transfers) == 2
