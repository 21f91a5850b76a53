"""限时办理 (I3, P3): deadlines in working days on the official calendar — across holidays and
调休 make-up working days — visible as overdue / at risk, counted in a gauge, and announced by
intake.application.deadline once per state change."""
from __future__ import annotations

from datetime import date

from services.intake.domain.deadlines import clock_for, clock_state, load_time_limits, overall_deadline, step_deadline
from shared.calendar import WorkingDays, default_calendar
from shared.events.intake import ApplicationDeadline
from tests.intake.conftest import at, case_opened, events, intake, publish
from tests.support import application_body, auth, eventually

LIMITS = load_time_limits()
DAYS = WorkingDays(default_calendar())


def test_working_days_cross_holidays_and_make_up_days() -> None:
    """P3: 5 working days. National Day 2026 (Oct 1–7 off) with Saturday Oct 10 a 调休 working
    day; Spring Festival 2026 (Feb 15–23 off) with Saturday Feb 14 a working day."""
    assert overall_deadline("linshi", at("2026-09-30"), DAYS, LIMITS).due == date(2026, 10, 13)
    assert overall_deadline("linshi", at("2026-02-12"), DAYS, LIMITS).due == date(2026, 2, 26)
    # Sunday Sep 20 and Saturday Feb 28 are working days; an ordinary Saturday is not.
    assert DAYS.add(date(2026, 9, 18), 1).due == date(2026, 9, 20)
    assert DAYS.add(date(2026, 2, 27), 1).due == date(2026, 2, 28)
    assert DAYS.add(date(2026, 11, 27), 1).due == date(2026, 11, 30)
    late = overall_deadline("dibao", at("2026-11-24"), DAYS, LIMITS)
    assert late.provisional and late.due.year == 2027  # 2027 not published yet: weekends-only, marked


def test_step_clocks_and_states() -> None:
    # A step never runs past the acceptance-to-payment limit (linshi: 5 working days).
    overall = overall_deadline("linshi", at("2026-09-30"), DAYS, LIMITS)
    review = step_deadline("under_review", "linshi", at("2026-10-12"), overall, DAYS, LIMITS)
    assert review is not None and review.due == date(2026, 10, 13)
    # at risk with one working day left; a one-day step only on its last day.
    five = clock_for(date(2026, 9, 30), 5, DAYS, LIMITS)
    assert five.at_risk_on == date(2026, 10, 12)
    one = clock_for(date(2026, 9, 30), 1, DAYS, LIMITS)
    assert one.due == one.at_risk_on == date(2026, 10, 8)
    assert clock_state(five.due, five.at_risk_on, date(2026, 10, 9)) == "on_time"
    assert clock_state(five.due, five.at_risk_on, date(2026, 10, 12)) == "at_risk"
    assert clock_state(five.due, five.at_risk_on, date(2026, 10, 13)) == "at_risk"
    assert clock_state(five.due, five.at_risk_on, date(2026, 10, 14)) == "overdue"
    assert step_deadline("closed", "linshi", at("2026-10-12"), overall, DAYS, LIMITS) is None


async def test_overdue_and_at_risk_lists_gauge_and_events_once_per_change(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        service = app.state.intake
        service.clock = lambda: at("2026-09-30")
        clerk = auth("township_clerk")
        r = await client.post("/v1/applications", json=application_body(seq=1, program="linshi"), headers=clerk)
        linshi = r.json()
        assert linshi["due_by"] == "2026-10-13"            # P3 across National Day and 调休 Oct 10
        assert linshi["step_due_by"] == "2026-10-08"       # dispatch step: one working day
        r = await client.post("/v1/applications", json=application_body(seq=2), headers=clerk)
        dibao = r.json()
        await publish(app, case_opened(dibao), dibao["application_id"])  # under review: 25 working days

        scanner = app.state.deadlines
        county = "522701000000"

        async def listed(state: str, on: str, region: str = county) -> list[str]:
            r = await client.get(f"/v1/applications?state={state}&region_code={region}&on={on}",
                                 headers=auth("county_civil_affairs"))
            assert r.status_code == 200, r.text
            return [i["application_id"] for i in r.json()["items"]]

        out = await scanner.scan(date(2026, 10, 7))   # holiday: the clock has not run out
        assert (out.overdue, out.at_risk, out.events_emitted) == (0, 0, 0)
        out = await scanner.scan(date(2026, 10, 8))
        assert (out.at_risk, out.events_emitted) == (1, 1)
        assert await listed("at_risk", "2026-10-08") == [linshi["application_id"]]
        assert (await scanner.scan(date(2026, 10, 8))).events_emitted == 0   # no change, no event
        out = await scanner.scan(date(2026, 10, 9))
        assert (out.overdue, out.events_emitted) == (1, 1)
        assert await listed("overdue", "2026-10-09") == [linshi["application_id"]]
        assert await listed("overdue", "2026-10-09", region="522701001000") == [linshi["application_id"]]
        assert (await scanner.scan(date(2026, 10, 12))).events_emitted == 0
        deadline_events = await events(app, ApplicationDeadline.TYPE)
        assert [(e["data"]["state"], e["data"]["observed_on"]) for e in deadline_events] == [
            ("at_risk", "2026-10-08"), ("overdue", "2026-10-09")]
        assert all(e["data"]["due_by"] == "2026-10-08" for e in deadline_events)

        # The operators' endpoint runs the same scan within the caller's region.
        r = await client.post("/v1/deadline-scans", json={"on": "2026-10-12"}, headers=auth("county_civil_affairs"))
        assert r.status_code == 200 and r.json()["overdue"] == 1 and r.json()["events_emitted"] == 0
        assert (await client.post("/v1/deadline-scans", json={}, headers=auth("township_clerk"))).status_code == 403
        # Staff outside the region may not list it; the gauge counts it.
        r = await client.get("/v1/applications?state=overdue&region_code=522702000000",
                             headers=auth("county_civil_affairs"))
        assert r.status_code == 403
        metrics = (await client.get("/metrics")).text
        assert 'intake_applications_deadline{state="overdue"}' in metrics
        assert await listed("on_time", "2026-10-12") == [dibao["application_id"]]


async def test_background_scan_runs_in_the_lifespan(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with intake(f"sqlite+aiosqlite:///{tmp_path}/bg.db", deadline_scan_interval_s=0.05) as (app, client):
        app.state.intake.clock = lambda: at("2026-09-30")
        await client.post("/v1/applications", json=application_body(program="linshi"), headers=auth("township_clerk"))
        app.state.intake.clock = lambda: at("2026-10-20")

        async def overdue() -> bool:
            return [e["data"]["state"] for e in await events(app, ApplicationDeadline.TYPE)] == ["overdue"]
        await eventually(overdue, timeout=10)
