"""Abuse limits on the running services: per-client rate limits on the public endpoints (the
calculator and applications) with 429 + Retry-After, body size limits, CORS by setting."""
from __future__ import annotations

from pathlib import Path

from services.embedded import build_apps
from tests.support import application_body, auth, bounded, running


async def test_applications_and_calculator_are_rate_limited_per_client(tmp_path: Path) -> None:
    await bounded(_rate_limited(tmp_path))


async def _rate_limited(tmp_path: Path) -> None:
    # A token comes back every 1,000 s: a slow machine (the first request migrates and warms up)
    # cannot refill the bucket between the requests and turn the expected 429 into a 201.
    apps = build_apps(tmp_path, public_rate_limit_per_s=0.001, public_rate_limit_burst=2)
    async with running(apps["intake"]) as intake, running(apps["eligibility"]) as elig:
        clerk = auth("township_clerk")
        codes = [(await intake.post("/v1/applications", json=application_body(seq=i), headers=clerk)).status_code
                 for i in range(3)]
        assert codes[:2] == [201, 201] and codes[2] == 429
        limited = await intake.post("/v1/applications", json=application_body(seq=9), headers=clerk)
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) >= 1
        other_client = await intake.post("/v1/applications", json=application_body(seq=10),
                                         headers=auth("township_clerk", sub="another-clerk"))
        assert other_client.status_code == 201
        calc = [(await elig.post("/v1/assessments", json={})).status_code for _ in range(3)]
        assert calc[:2] == [422, 422] and calc[2] == 429


async def test_oversized_body_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    apps = build_apps(tmp_path, max_body_bytes=2048)
    async with running(apps["intake"]) as intake:
        body = application_body(seq=1)
        body["household"]["members"][0]["name"] = "x" * 40
        body["hardship"] = {"kind": "emergency", "months": 1, "description": "很" * 2000}
        r = await intake.post("/v1/applications", json=body, headers=auth("township_clerk"))
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        listed = await intake.get("/v1/applications", headers=auth("township_clerk"))
        assert listed.status_code == 200 and listed.json()["items"] == []


async def test_cors_allows_the_configured_frontends_only(tmp_path: Path) -> None:
    apps = build_apps(tmp_path, cors_allow_origins=["https://e-jiuzhu.example.gov.cn"])
    async with running(apps["eligibility"]) as elig:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        ok = await elig.options("/v1/assessments", headers={"Origin": "https://e-jiuzhu.example.gov.cn", **pre})
        assert ok.headers.get("access-control-allow-origin") == "https://e-jiuzhu.example.gov.cn"
        bad = await elig.options("/v1/assessments", headers={"Origin": "https://evil.example.com", **pre})
        assert "access-control-allow-origin" not in bad.headers
