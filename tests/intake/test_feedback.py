"""反馈 to the channel (I2): 12345 hears each work order's outcome through its callback. A
failing platform does not lose feedback: it is kept, visible to operators and in the gauge,
and retried with backoff until it goes through."""
from __future__ import annotations

import httpx
import orjson

from services.intake.channel_feedback import backoff_seconds
from tests.intake.conftest import decision, intake, publish
from tests.support import application_body, auth, eventually

CALLBACK = "http://hotline.test/callback"
FAST = {"hotline_callback_url": CALLBACK, "feedback_retry_base_s": 0.05, "feedback_retry_max_s": 0.2,
        "feedback_poll_interval_s": 0.05, "hotline_callback_connect_retries": 0}


class Platform:
    """The 12345 platform's callback endpoint: down until told otherwise."""

    def __init__(self, status_while_down: int = 503) -> None:
        self.up = False
        self.status_while_down = status_while_down
        self.received: list[dict] = []
        self.attempts = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        assert request.url == CALLBACK and request.headers["Idempotency-Key"].startswith("intake-feedback-")
        if not self.up:
            if self.status_while_down == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status_while_down, text="platform down")
        self.received.append(orjson.loads(request.content))
        return httpx.Response(200, json={"ok": True})


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 10, 60) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]


async def test_callback_fails_is_kept_and_visible_then_delivered(database_url: str) -> None:
    platform = Platform()
    async with intake(database_url, transport=httpx.MockTransport(platform.handler), **FAST) as (app, client):
        op = auth("hotline_operator")
        out = (await client.post("/v1/applications", json=application_body(channel="hotline_12345"),
                                 headers=op)).json()
        await publish(app, decision(out, monthly="650.00"), out["application_id"])

        async def failed() -> list[dict]:
            r = await client.get("/v1/channel-feedback?state=failed", headers=op)
            return [f for f in r.json() if f["attempts"] >= 2]
        rows = await eventually(failed, timeout=10)
        assert rows[0]["work_order"] == "WO-000001" and "503" in rows[0]["last_error"]
        metrics = (await client.get("/metrics")).text
        assert 'intake_channel_feedback{state="failed"} 1.0' in metrics
        # Outside the operator's region it is not shown.
        r = await client.get("/v1/channel-feedback?state=failed", headers=auth("hotline_operator", region="522702000000"))
        assert r.json() == []

        platform.up = True

        async def sent() -> list[dict]:
            return (await client.get("/v1/channel-feedback?state=sent", headers=op)).json()
        rows = await eventually(sent, timeout=10)
        assert rows[0]["last_error"] is None and rows[0]["sent_at"]
        assert platform.received == [{"work_order": "WO-000001", "outcome": "approved",
                                      "text": rows[0]["text"]}]
        assert "650.00" in rows[0]["text"]
        assert (await client.get("/v1/channel-feedback?state=failed", headers=op)).json() == []
        metrics = (await client.get("/metrics")).text
        assert 'intake_channel_feedback{state="failed"} 0.0' in metrics


async def test_permanent_refusal_waits_for_an_operator_retry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = Platform(status_while_down=400)
    async with intake(f"sqlite+aiosqlite:///{tmp_path}/fb.db", transport=httpx.MockTransport(platform.handler),
                      **FAST) as (app, client):
        op = auth("hotline_operator")
        r = await client.post("/v1/hotline-calls", headers=op, json={
            "work_order": "WO-9", "kind": "inquiry", "text": "低保怎么申请？", "region_code": "522701001000"})
        call = r.json()
        await client.post(f"/v1/hotline-calls/{call['call_id']}/answer", headers=auth("township_clerk"),
                          json={"text": "请携带身份证、户口簿到镇便民服务中心。"})

        async def failed() -> list[dict]:
            return (await client.get("/v1/channel-feedback?state=failed", headers=op)).json()
        row = (await eventually(failed, timeout=10))[0]
        assert row["next_attempt_at"] is None and "400" in row["last_error"]   # no automatic retry
        attempts = platform.attempts
        await app.state.feedback.deliver_due()
        assert platform.attempts == attempts
        platform.up = True
        r = await client.post(f"/v1/channel-feedback/{row['feedback_id']}/retry", headers=op)
        assert r.status_code == 200

        async def sent() -> list[dict]:
            return (await client.get("/v1/channel-feedback?state=sent", headers=op)).json()
        await eventually(sent, timeout=10)
        assert platform.received[0]["work_order"] == "WO-9"
        assert (await client.post(f"/v1/channel-feedback/{row['feedback_id']}/retry", headers=op)).status_code == 409


async def test_unreachable_platform_and_no_feedback_for_other_channels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = Platform(status_while_down=0)   # connection refused
    async with intake(f"sqlite+aiosqlite:///{tmp_path}/fb2.db", transport=httpx.MockTransport(platform.handler),
                      **FAST) as (app, client):
        window = (await client.post("/v1/applications", json=application_body(seq=1),
                                    headers=auth("township_clerk"))).json()
        await publish(app, decision(window), window["application_id"])
        hotline = (await client.post("/v1/applications", json=application_body(seq=2, channel="hotline_12345"),
                                     headers=auth("hotline_operator"))).json()
        await publish(app, decision(hotline, "denied", monthly=None), hotline["application_id"])

        async def failed() -> list[dict]:
            return (await client.get("/v1/channel-feedback?state=failed", headers=auth("county_civil_affairs"))).json()
        rows = await eventually(failed, timeout=10)
        # Only the 12345 application has a channel callback: one row for decision + transfer.
        assert [(r["work_order"], r["outcome"]) for r in rows] == [("WO-000002", "transferred")]
        assert "ConnectError" in rows[0]["last_error"]
        assert "不符合条件" in rows[0]["text"] and "乡村振兴" in rows[0]["text"]
