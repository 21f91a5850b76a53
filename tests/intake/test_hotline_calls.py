"""12345 calls that are not applications (I1, I2): recorded, routed to the office that answers,
answered within their time limit, and the answer is the work order's callback."""
from __future__ import annotations

import httpx
import orjson

from services.intake import metrics as intake_metrics

from tests.intake.conftest import intake
from tests.support import auth, eventually

OP = auth("hotline_operator")


async def test_calls_are_routed_answered_and_fed_back(database_url: str) -> None:
    sent: list[dict] = []

    def platform(request: httpx.Request) -> httpx.Response:
        sent.append(orjson.loads(request.content))
        return httpx.Response(204)

    async with intake(database_url, transport=httpx.MockTransport(platform), hotline_callback_url="http://h.test/cb",
                      feedback_poll_interval_s=0.05) as (app, client):
        app.state.intake.clock = lambda: __import__("tests.intake.conftest", fromlist=["at"]).at("2026-09-30")
        inquiry = {"work_order": "WO-100", "kind": "inquiry", "text": "临时救助需要什么材料？",
                   "region_code": "522701001004"}
        r = await client.post("/v1/hotline-calls", json=inquiry, headers=OP)
        assert r.status_code == 201
        call = r.json()
        assert (call["handler_region_code"], call["handler_department"]) == (
            "522701001000", "township_social_assistance_office")
        assert call["state"] == "open" and call["due_by"] == "2026-10-08"   # one working day, after National Day
        # The same work order again: the same record; other content under that number: 409.
        again = await client.post("/v1/hotline-calls", json=inquiry, headers=OP)
        assert again.status_code == 200 and again.json()["call_id"] == call["call_id"]
        assert (await client.post("/v1/hotline-calls", json={**inquiry, "text": "别的"}, headers=OP)).status_code == 409

        complaint = {"work_order": "WO-101", "kind": "complaint", "text": "村里低保评议不公开",
                     "region_code": "522701001004"}
        c = (await client.post("/v1/hotline-calls", json=complaint, headers=OP)).json()
        assert (c["handler_region_code"], c["handler_department"]) == (
            "522701000000", "county_civil_affairs_supervision")   # complaints go up to the county

        # Only the handling office answers; the hotline operator does not.
        url = f"/v1/hotline-calls/{call['call_id']}/answer"
        answer = {"text": "请携带身份证和困难情况说明到镇便民服务中心。", "outcome": "answered"}
        assert (await client.post(url, json=answer, headers=OP)).status_code == 403
        assert (await client.post(url, json=answer, headers=auth("township_clerk", region="522701002000"))).status_code == 404
        r = await client.post(url, json=answer, headers=auth("township_clerk", region="522701001000"))
        assert r.status_code == 200 and r.json()["state"] == "answered"
        assert (await client.post(url, json=answer, headers=auth("township_clerk"))).status_code == 409
        assert (await client.post(f"/v1/hotline-calls/{c['call_id']}/answer", json=answer,
                                  headers=auth("township_clerk", region="522701001000"))).status_code == 403

        async def delivered() -> list[dict]:
            return sent
        await eventually(delivered, timeout=10)
        assert sent == [{"work_order": "WO-100", "outcome": "answered", "text": answer["text"]}]

        r = await client.get("/v1/hotline-calls?state=open", headers=OP)
        assert [x["work_order"] for x in r.json()] == ["WO-101"]
        # the open-calls gauge (refreshed on each /metrics scrape) counts on both databases
        await app.state.runtime.hotline.refresh_gauge()
        assert intake_metrics.HOTLINE_CALLS_OPEN.labels("false")._value.get() == 1
        r = await client.get(f"/v1/hotline-calls/{call['call_id']}", headers=auth("hotline_operator", region="522702000000"))
        assert r.status_code == 404
        bad = await client.post("/v1/hotline-calls", headers=OP, json={**inquiry, "work_order": "WO-102",
                                                                       "kind": "chat", "region_code": "5227"})
        assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"kind", "region_code"}
