"""The embedded run (one process, in-process bus, SQLite under a data folder): the foundation
flow through all four services, and the operations endpoints."""
from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from services.embedded import build_apps
from tests.support import COUNTY, application_body, auth, eventually, running


async def test_application_flows_through_all_four_services(tmp_path: Path) -> None:
    apps = build_apps(tmp_path, outbox_poll_interval_s=0.05)
    async with AsyncExitStack() as stack:
        c = {name: await stack.enter_async_context(running(app)) for name, app in apps.items()}
        clerk = auth("township_clerk")
        r = await c["intake"].post("/v1/applications", json=application_body(seq=7),
                                   headers={**clerk, "Idempotency-Key": "flow-1"})
        assert r.status_code == 201, r.text
        app_id = r.json()["application_id"]

        async def case_id() -> str | None:
            return (await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)).json()["case_id"]
        cid = await eventually(case_id)
        timeline = (await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)).json()["timeline"]
        assert [s["step"] for s in timeline][:4] == ["received", "accepted", "dispatched", "under_review"]

        case = (await c["eligibility"].get(f"/v1/cases/{cid}", headers=clerk)).json()
        assert case["application_id"] == app_id and case["channel"] == "window"

        async def clock() -> dict | None:
            resp = await c["payments"].get(f"/v1/cases/{cid}/payment-deadline", headers=clerk)
            return resp.json() if resp.status_code == 200 else None
        assert (await eventually(clock))["rule"] == "P3"

        async def counted() -> bool:
            body = (await c["monitoring"].get("/v1/indicators/new-cases", params={"region_code": COUNTY},
                                              headers=auth("monitoring_operator"))).json()
            return body["by_channel"]["window"] == 1
        await eventually(counted)

        # The same request again is the same answer; the outboxes drain.
        again = await c["intake"].post("/v1/applications", json=application_body(seq=7),
                                       headers={**clerk, "Idempotency-Key": "flow-1"})
        assert again.status_code == 201 and again.json()["application_id"] == app_id
        for name, client in c.items():
            ready = (await client.get("/readyz")).json()
            assert ready["status"] == "ready" and ready["dead_letters_unresolved"] == 0, (name, ready)


async def test_operations_endpoints(tmp_path: Path) -> None:
    apps = build_apps(tmp_path)
    async with running(apps["intake"]) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok", "service": "intake"}
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "bus": "ok"}
        await c.get("/v1/applications/nope", headers=auth("township_clerk"))
        text = (await c.get("/metrics")).text
        for metric in ("http_requests_total", "http_request_duration_seconds", "outbox_backlog",
                       "consumer_lag", "dead_letters_total"):
            assert metric in text
        assert 'http_requests_total{method="GET",route="/v1/applications/{application_id}",service="intake",status="404"}' in text
        # problem+json for errors, with a correlation id echoed
        r = await c.get("/v1/applications/nope", headers={**auth("township_clerk"), "X-Correlation-ID": "abc123"})
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["x-correlation-id"] == "abc123"
        verify = await c.get("/v1/audit/verify", headers=auth("county_civil_affairs"))
        assert verify.status_code == 200 and verify.json()["ok"] is True
        assert (await c.get("/v1/audit/verify", headers=auth("township_clerk"))).status_code == 403
        unauth = await c.get("/v1/applications/nope")
        assert unauth.status_code == 401 and unauth.json()["status"] == 401
