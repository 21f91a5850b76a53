"""The operators' dashboard in a real browser: monitoring served by uvicorn on a free port with
seeded data, headless Chromium (Debian's ``chromium``; deploy/ci/ensure-chromium.sh installs it)
renders /dashboard, and the DOM must hold the real numbers, not the static template."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from datetime import date
from decimal import Decimal

import pytest
import uvicorn

from shared.events.payments import ReserveFundAlert
from shared.messaging.inprocess import InProcessBus
from tests.conftest import IN_CI, free_port
from tests.support import auth, token

from services.monitoring.app import create_app
from services.monitoring.settings import Settings
from tests.monitoring.helpers import PARTNER_KEYS, Clock, Harness, decision, person, shanghai


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_BIN"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _text(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, f"#{element_id} not in the rendered DOM"
    return m.group(1)


async def test_dashboard_renders_real_numbers_in_headless_chromium(tmp_path):
    binary = _chromium()
    if binary is None:
        if IN_CI:
            pytest.fail("chromium is required under CI=true (deploy/ci/ensure-chromium.sh installs it)", pytrace=False)
        pytest.skip("chromium not installed (run deploy/ci/ensure-chromium.sh)")

    bus = InProcessBus()
    clock = Clock(shanghai(2026, 9, 29))
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/dash.db", partner_keys=PARTNER_KEYS,
                              log_level="WARNING"), bus=bus, clock=clock)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="on"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        import httpx
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            h = Harness(client=client, bus=bus, clock=clock, app=app)
            people = [person(i) for i in range(100, 104)]
            await h.publish(decision(people[:3]), subject=people[0])                  # 3 低保
            await h.publish(decision([people[3]], program="tekun"), subject=people[3])  # 1 特困
            await h.partner_post("civil_registration", {"type": "death", "person_id": people[0],
                                                         "occurred_on": "2026-09-20"})          # M6, level 1
            await h.partner_post("medical_insurance", {"type": "medical_expense", "person_id": people[1],
                                                        "occurred_on": "2026-09-21", "data": {"amount": "25000"}})
            await h.partner_post("human_resources", {"type": "unemployment", "person_id": people[2],
                                                      "occurred_on": "2026-09-22"})               # level 3
            await h.publish(ReserveFundAlert(township_code="522701001000", kind="idle_funds",
                                             amount=Decimal("48321.50"), since=date(2026, 7, 1),
                                             observed_on=date(2026, 9, 28)), subject="t", source="payments")
            summary = (await client.get("/v1/warnings/summary", headers=auth("monitoring_operator"))).json()
            assert summary["open"] == 3

        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
        url = f"http://127.0.0.1:{port}/dashboard?period=2026-09&token={token('monitoring_operator')}"
        proc = await asyncio.create_subprocess_exec(
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        dom = out.decode("utf-8", "replace")
        assert proc.returncode == 0, err.decode("utf-8", "replace")[-2000:]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)

    assert 'data-loaded="true"' in dom, dom[:3000]
    assert _text(dom, "warnings-open") == "3"
    assert _text(dom, "warnings-overdue") == "0"
    assert _text(dom, "kpi-m6") == "1"                      # the death, found this month
    assert _text(dom, "register-total") == "3"              # 2 低保 left + 1 特困 after the death
    assert re.search(r'data-category="dibao"[^>]*>2<', dom)
    assert re.search(r'class="level-total" data-level="1"[^>]*>1<', dom)
    assert re.search(r'class="level-total" data-level="3"[^>]*>1<', dom)
    assert _text(dom, "funds-idle") == "48321.50"
    assert _text(dom, "health-dead") == "0"
    assert "522701001001" in dom                            # the open warnings' village in the table
    assert "token=" not in dom                              # the token left the address bar
