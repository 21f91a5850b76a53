"""An applicant sees only their own cases; staff only those in their region (404 otherwise);
ID numbers are masked for roles that do not verify identity (shared/privacy.py)."""
from __future__ import annotations

from datetime import date

from tests.intake.conftest import intake
from tests.support import application_body, auth, make_id


async def test_visibility_and_masking_per_role(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        body = application_body(channel="e_jiuzhu")
        spouse = make_id(date(1952, 6, 1), 5)
        body["household"]["members"].append({"person_id": spouse, "relation": "spouse", "birth_date": "1952-06-01"})
        me = auth("applicant", sub="wx-me")
        r = await client.post("/v1/applications", json=body, headers=me)
        assert r.status_code == 201
        aid = r.json()["application_id"]
        person = body["household"]["members"][0]["person_id"]
        masked = person[:3] + "*" * 11 + person[-4:]
        assert r.json()["applicant_person_id"] == masked   # applicants see masked numbers too

        async def read(headers: dict[str, str]) -> tuple[int, dict]:
            r = await client.get(f"/v1/applications/{aid}", headers=headers)
            return r.status_code, r.json()

        for role in ("township_clerk", "township_office_director", "county_civil_affairs"):
            status, out = await read(auth(role))
            assert status == 200 and out["applicant_person_id"] == person, role
            assert [m["person_id"] for m in out["members"]] == [person, spouse]
        for role in ("hotline_operator", "village_coordinator", "monitoring_operator"):
            status, out = await read(auth(role))
            assert status == 200 and out["applicant_person_id"] == masked, role
            assert "*" in out["members"][1]["person_id"] and out["members"][1]["person_id"] != spouse
        status, out = await read(me)
        assert status == 200 and out["application_id"] == aid
        # Someone else's: indistinguishable from absent.
        assert (await read(auth("applicant", sub="wx-other")))[0] == 404
        assert (await read(auth("township_clerk", region="522701002000")))[0] == 404
        assert (await read(auth("county_civil_affairs", region="522702000000")))[0] == 404
        assert (await client.get("/v1/applications/nope", headers=auth("township_clerk"))).status_code == 404
        assert (await read(auth("county_finance")))[0] == 403   # a role without business here
        r = await client.post(f"/v1/applications/{aid}/documents", json={"documents": ["id_card"]},
                              headers=auth("applicant", sub="wx-other"))
        assert r.status_code == 404

        # Lists: the applicant's own only; staff inside their region.
        await client.post("/v1/applications", json=application_body(seq=9), headers=auth("township_clerk"))
        mine = (await client.get("/v1/applications", headers=me)).json()["items"]
        assert [i["application_id"] for i in mine] == [aid] and mine[0]["applicant_person_id"] == masked
        assert len((await client.get("/v1/applications", headers=auth("township_clerk"))).json()["items"]) == 2
        assert (await client.get("/v1/applications", headers=auth("township_clerk", region="522701002000"))).json()["items"] == []
