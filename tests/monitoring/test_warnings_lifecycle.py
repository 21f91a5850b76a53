"""M3 限时核查: a warning is closed only with the recorded result of the on-the-ground check;
one not verified by its deadline is escalated to the county by the daily scan."""
from __future__ import annotations

import asyncio

from shared.events.monitoring import WarningClosed, WarningEscalated
from tests.support import auth, eventually

from tests.monitoring.helpers import COUNTY, decision, harness, person, shanghai


async def _raise_two(h) -> tuple[int, int]:
    a, b = person(60), person(61)
    await h.publish(decision([a, b]), subject=a)
    r1 = await h.partner_post("civil_registration", {"type": "death", "person_id": a, "occurred_on": "2026-09-28"})
    r2 = await h.partner_post("human_resources", {"type": "unemployment", "person_id": b, "occurred_on": "2026-09-28"})
    return r1.json()["warnings"][0]["warning_id"], r2.json()["warnings"][0]["warning_id"]


async def test_m3_close_requires_a_result_and_records_who(database_url):
    async with harness(database_url) as h:
        w1, _ = await _raise_two(h)
        vc = auth("village_coordinator", sub="vc-wang")
        r = await h.client.post(f"/v1/warnings/{w1}/close", json={"note": "went there"}, headers=vc)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "result"
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await h.client.post(f"/v1/warnings/{w1}/close", json={"result": "looked_fine"}, headers=vc)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "result"
        assert (await h.client.get(f"/v1/warnings/{w1}", headers=vc)).json()["status"] == "open"
        r = await h.client.post(f"/v1/warnings/{w1}/close", headers=auth("monitoring_operator"),
                                json={"result": "death_verified"})
        assert r.status_code == 403  # operators watch; village and township staff verify
        r = await h.client.post(f"/v1/warnings/{w1}/close", headers=vc,
                                json={"result": "death_verified", "verified_on": "2026-09-28"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "verified_on"  # before it was raised
        h.clock.set(shanghai(2026, 9, 30, 16))
        r = await h.client.post(f"/v1/warnings/{w1}/close", headers=vc,
                                json={"result": "death_verified", "note": "火化证明已核", "verified_on": "2026-09-30"})
        assert r.status_code == 200, r.text
        w = r.json()
        assert (w["status"], w["result"], w["result_label"], w["closed_by"], w["verified_on"]) == (
            "closed", "death_verified", "已死亡核实", "vc-wang", "2026-09-30")
        assert [t["action"] for t in w["trail"]] == ["raised", "closed"]
        assert w["trail"][1]["actor"] == "village_coordinator:vc-wang"
        again = await h.client.post(f"/v1/warnings/{w1}/close", headers=vc, json={"result": "included"})
        assert again.status_code == 409
        # §7: the close is in the tamper-evident audit trail, and the chain verifies
        audit = (await h.client.get("/v1/audit", params={"entity_type": "warning", "entity_id": str(w1)},
                                    headers=auth("monitoring_operator"))).json()["items"]
        assert [(a["action"], a["actor_role"]) for a in audit] == [("warning.closed", "village_coordinator")]
        verify = (await h.client.get("/v1/audit/verify", headers=auth("county_civil_affairs"))).json()
        assert verify["ok"] is True
        await eventually(lambda: _true(h.events(WarningClosed.TYPE)))


async def _true(v):
    return v


async def test_m3_overdue_warnings_escalate_to_the_county(database_url):
    """Raised Tue 2026-09-29: L1 due Fri Oct 9, L3 due Mon Oct 19. On Oct 9 nothing is overdue; on
    Sat Oct 10 (a make-up working day) the L1 warning goes to the county, once."""
    async with harness(database_url) as h:
        w1, w3 = await _raise_two(h)
        op = auth("monitoring_operator")
        r = await h.client.post("/v1/warnings/escalations", json={"today": "2026-10-09"}, headers=op)
        assert r.json()["escalated"] == 0
        h.clock.set(shanghai(2026, 10, 10))
        listed = (await h.client.get("/v1/warnings", params={"status": "overdue"}, headers=op)).json()["items"]
        assert [w["warning_id"] for w in listed] == [w1]
        r = await h.client.post("/v1/warnings/escalations", json={"today": "2026-10-10"}, headers=op)
        assert r.status_code == 200
        assert r.json()["escalated"] == 1 and r.json()["warnings"][0]["escalated_to"] == COUNTY
        again = await h.app.state.warnings.escalate_overdue(__import__("datetime").date(2026, 10, 10))
        assert again["escalated"] == 0
        w = (await h.client.get(f"/v1/warnings/{w1}", headers=op)).json()
        assert w["escalated_to"] == COUNTY and w["overdue"] is True
        assert [t["action"] for t in w["trail"]] == ["raised", "escalated"]
        summary = (await h.client.get("/v1/warnings/summary", headers=op)).json()
        assert summary["overdue"] == 1 and summary["escalated_open"] == 1
        assert summary["by_level"]["1"]["overdue"] == 1 and summary["by_level"]["3"]["later"] == 1
        await eventually(lambda: _true(h.events(WarningEscalated.TYPE)))
        [e] = h.events(WarningEscalated.TYPE)
        assert e.data["warning_id"] == w1 and e.data["observed_on"] == "2026-10-10"
        r = await h.client.post("/v1/warnings/escalations", json={"today": "2026-10-10"},
                                headers=auth("village_coordinator"))
        assert r.status_code == 403


async def test_m3_the_periodic_scan_escalates_by_itself(sqlite_url):
    async with harness(sqlite_url) as h:
        w1, _ = await _raise_two(h)
        h.clock.set(shanghai(2026, 10, 12))
        runtime = h.app.state.runtime
        runtime.scan_interval_s = 0.05
        task = asyncio.create_task(runtime._periodic())  # what start() runs when ESCALATION_SCAN_INTERVAL_S > 0
        try:
            await eventually(lambda: _true(h.events(WarningEscalated.TYPE)), timeout=10)
        finally:
            task.cancel()
        w = (await h.client.get(f"/v1/warnings/{w1}", headers=auth("monitoring_operator"))).json()
        assert w["trail"][-1]["actor"] == "periodic"
