"""Issue 8: no full identity number and no full bank account number in any log line, and none
at rest in any service's database: intake's applications, payments' accounts and attempts, and
every table of eligibility, payments and monitoring, which keep person keys (shared/pii.py) and
the numbers only encrypted in their ``person_vault``. Only the messaging tables (outbox, inbox,
dead letters) hold events, and events carry the number between services.

A full workload runs on the embedded system (all four services, the in-process bus, SQLite
files) in a child process whose stdout and stderr are the capture: structlog's lines, the
standard library's loggers (httpx, asyncio, uvicorn, …) through the kernel's handler, and
anything printed. A child process because the kernel configures logging once per process and
binds it to the sys.stdout of that moment: in the test process that is whatever pytest had in
place first, which neither capsys nor capfd reliably sees (and the suite runs with
``-p no:logging``, so caplog is not there either).

The workload: an application on each channel (a two-person household at the window, e救助,
12345, active discovery), documents supplied later, a repeated and an invalid application, a
handoff and a 转办, views by roles that see full and masked numbers; the means test by manual
entries and a decision in eligibility; the payroll in payments paying two beneficiaries
through a fake bank, one refused for a closed account and paid after the account is
corrected; monitoring's indicators. Two probes (one structlog event, one standard library
record) carry a full number on purpose: they must come out masked, which shows that both
kinds of line are captured and that the capture would see a leak.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import AsyncExitStack
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

PROBE_ID = "110101199003078515"
PROBE_ACCOUNT = "6217000010098765432"
GOOD_ACCOUNT = "6222020200112233445"
CLOSED_ACCOUNT = "6228480010000000017"
FIXED_ACCOUNT = "6230580000123456789"
ACCOUNTS = (GOOD_ACCOUNT, CLOSED_ACCOUNT, FIXED_ACCOUNT)
SOURCES = ("hukou", "social_insurance", "vehicles", "real_estate", "housing_fund", "bank_deposits")
MESSAGING_TABLES = {"outbox", "inbox", "dead_letters"}


# -- the workload (runs in the child process) -------------------------------------------------

async def _workload(data_dir: Path) -> dict[str, Any]:
    import structlog

    from services.embedded import build_apps
    from tests.payments.helpers import FakeBank
    from tests.support import COUNTY, TOWNSHIP, application_body, auth, eventually, make_id, running

    bank = FakeBank(closed_accounts={CLOSED_ACCOUNT})
    apps = build_apps(data_dir, outbox_poll_interval_s=0.05, consumer_retry_backoff_s=0.01, bank_dispatch=False,
                      scan_interval_s=0, bank_lease_s=0, deadline_scan_interval_s=0, gc_freeze_on_start=False,
                      log_level="DEBUG")
    payments_svc = apps["payments"].state.payments
    payments_svc.bank = payments_svc.payouts.bank = bank.http()

    ids: list[str] = []
    out: dict[str, Any] = {"ids": ids, "statuses": {}}

    def st(name: str, r: Any, *expected: int) -> Any:
        out["statuses"][name] = r.status_code
        assert r.status_code in expected, (name, r.status_code)
        return r.json()

    async with AsyncExitStack() as stack:
        c = {name: await stack.enter_async_context(running(app)) for name, app in apps.items()}
        clerk, director = auth("township_clerk", TOWNSHIP), auth("township_office_director", TOWNSHIP)
        county, finance = auth("county_civil_affairs"), auth("county_finance")
        hotline, village, monitor = auth("hotline_operator"), auth("village_coordinator"), auth("monitoring_operator")

        # the probes: a full number handed to each kind of logger on purpose
        structlog.get_logger("pii.probe").info("pii_probe", person_id=PROBE_ID, account=PROBE_ACCOUNT)
        logging.getLogger("pii.probe").warning("pii probe %s %s", PROBE_ID, PROBE_ACCOUNT)

        st("standards", await c["eligibility"].post("/v1/policies", headers=county, json={
            "region_code": COUNTY, "effective_from": "2026-01-01",
            "params": {"dibao_standard_urban": "800.00", "dibao_standard_rural": "600.00"}}), 200, 201)

        # -- intake: every channel ----------------------------------------------------------
        window = application_body(seq=101)
        spouse = make_id(date(1952, 6, 1), 102)
        window["household"]["members"].append({"person_id": spouse, "relation": "spouse", "birth_date": "1952-06-01",
                                                "monthly_income": "50.00", "labor_capacity": "none"})
        bodies = {"window": (window, {**clerk, "Idempotency-Key": "pii-window"}),
                  "e_jiuzhu": (application_body(seq=103, channel="e_jiuzhu"), auth("applicant", sub="wx-pii-103")),
                  "hotline_12345": (application_body(seq=104, channel="hotline_12345"), hotline),
                  "active_discovery": (application_body(seq=105, channel="active_discovery"), village),
                  "incomplete": (application_body(seq=106, documents=[]), clerk)}
        apps_out: dict[str, dict[str, Any]] = {}
        for name, (body, headers) in bodies.items():
            ids.extend(m["person_id"] for m in body["household"]["members"])
            apps_out[name] = st(f"submit_{name}", await c["intake"].post("/v1/applications", json=body,
                                                                        headers=headers), 201)
        st("repeat_same_key", await c["intake"].post("/v1/applications", json=window,
                                                     headers={**clerk, "Idempotency-Key": "pii-window"}), 201)
        st("repeat_open", await c["intake"].post("/v1/applications", json=application_body(seq=101), headers=clerk), 200)
        bad = application_body(seq=107)
        bad_id = bad["household"]["members"][0]["person_id"]
        bad["household"]["members"][0]["person_id"] = bad_id[:-1] + ("0" if bad_id[-1] != "0" else "1")
        ids.append(bad["household"]["members"][0]["person_id"])
        st("invalid_id", await c["intake"].post("/v1/applications", json=bad, headers=clerk), 422)

        inc = apps_out["incomplete"]["application_id"]
        st("documents", await c["intake"].post(f"/v1/applications/{inc}/documents", headers=clerk, json={
            "documents": ["id_card", "household_register", "economic_check_authorization", "income_statement"]}), 200)
        ej = apps_out["e_jiuzhu"]["application_id"]
        st("handoff", await c["intake"].post(f"/v1/applications/{ej}/handoff", headers=clerk, json={
            "to_sub": "township_clerk-test", "to_role": "township_clerk", "reason": "首问负责"}), 200)
        hl = apps_out["hotline_12345"]["application_id"]
        st("transfer", await c["intake"].post(f"/v1/applications/{hl}/transfers", headers=clerk, json={
            "department": "medical", "reason": "大病医疗救助"}), 201)
        for name, a in apps_out.items():
            st(f"get_{name}_clerk", await c["intake"].get(f"/v1/applications/{a['application_id']}", headers=clerk), 200)
        st("list_clerk", await c["intake"].get("/v1/applications", headers=clerk), 200)
        st("list_hotline", await c["intake"].get("/v1/applications", headers=hotline), 200)
        st("get_masked", await c["intake"].get(f"/v1/applications/{hl}", headers=hotline), 200, 404)

        # -- eligibility: the means test by manual entries, then a decision --------------------
        async def case_of(app_id: str) -> str | None:
            r = await c["intake"].get(f"/v1/applications/{app_id}", headers=clerk)
            return r.json()["case_id"]
        approved = {}
        for name in ("window", "e_jiuzhu"):
            cid = await eventually(lambda n=name: case_of(apps_out[n]["application_id"]))

            async def waiting(cid: str = cid) -> bool:
                r = await c["eligibility"].get(f"/v1/cases/{cid}", headers=clerk)
                return r.status_code == 200 and r.json()["status"] == "awaiting_verification"
            await eventually(waiting)
            for source in SOURCES:
                st(f"fact_{name}_{source}", await c["eligibility"].post(
                    f"/v1/cases/{cid}/facts", headers=clerk, json={"source": source, "summary": f"{source}: 无记录"}), 201)
            st(f"case_{name}_monitor", await c["eligibility"].get(f"/v1/cases/{cid}", headers=monitor), 200, 403, 404)
            d = st(f"decision_{name}", await c["eligibility"].post(f"/v1/cases/{cid}/decision", headers=director,
                                                                   json={"action": "confirm"}), 201)
            assert d["outcome"] == "approved", d["outcome"]
            approved[name] = bodies[name][0]["household"]["members"][0]["person_id"]

        # -- payments: the payroll through the bank --------------------------------------------
        pay = c["payments"]

        async def entitled(person: str) -> dict[str, Any] | None:
            r = await pay.get(f"/v1/beneficiaries/{person}", headers=finance)
            return r.json() if r.status_code == 200 and r.json()["entitlements"] else None
        ben = {name: await eventually(lambda p=p: entitled(p)) for name, p in approved.items()}
        month = ben["window"]["entitlements"][0]["first_month"]
        st("budget", await pay.post("/v1/budget-appropriations", headers=finance, json={
            "county_code": COUNTY, "amount": "100000.00", "reference": "预算指标-2026"}), 201)
        for name, number in (("window", CLOSED_ACCOUNT), ("e_jiuzhu", GOOD_ACCOUNT)):
            st(f"account_{name}", await pay.patch(f"/v1/beneficiaries/{approved[name]}/account", json={
                "account_number": number, "account_name": "张三", "bank_name": "农村信用社"},
                headers=auth("township_finance_leader", TOWNSHIP)), 200)
        st("account_invalid", await pay.patch(f"/v1/beneficiaries/{approved['window']}/account",
                                              json={"account_number": "62x2" + GOOD_ACCOUNT[4:]}, headers=finance), 422)
        st("payroll", await pay.post("/v1/payroll-runs", headers=county,
                                     json={"region_code": COUNTY, "month": month}), 201)
        first = await payments_svc.payouts.dispatch_once()
        out["first_dispatch"] = [first.accepted, first.rejected]
        st("account_fixed", await pay.patch(f"/v1/beneficiaries/{approved['window']}/account", json={
            "account_number": FIXED_ACCOUNT}, headers=auth("township_finance_leader", TOWNSHIP)), 200)
        second = await payments_svc.payouts.dispatch_once()
        out["second_dispatch"] = [second.accepted, second.rejected]
        listed = st("payments_list", await pay.get("/v1/payments", params={"region_code": COUNTY}, headers=finance), 200)
        for p in listed:
            for role_headers in (finance, clerk):
                st("payment_view", await pay.get(f"/v1/payments/{p['payment_id']}", headers=role_headers), 200)
        for person in approved.values():
            st("beneficiary_clerk", await pay.get(f"/v1/beneficiaries/{person}", headers=clerk), 200)
        st("reconciliation", await pay.get("/v1/reconciliation", headers=finance,
                                           params={"region_code": COUNTY, "from": month + "-01", "to": month + "-28"}),
           200, 422)

        # -- monitoring ---------------------------------------------------------------------
        async def counted() -> bool:
            r = await c["monitoring"].get("/v1/indicators/new-cases", params={"region_code": COUNTY}, headers=monitor)
            return sum(r.json()["by_channel"].values()) >= 4
        await eventually(counted)
        st("register", await c["monitoring"].get("/v1/register", params={"region_code": COUNTY}, headers=county), 200)
        for person in approved.values():
            st("register_history", await c["monitoring"].get(f"/v1/register/{person}/history", headers=county),
               200, 404)
        out["bank_accounts"] = [body["account_number"] for _, body in bank.requests]
        out["bank_outcomes"] = [a[1].get("status") for a in bank.answers.values()]
    return out


def child_main(data_dir: str) -> None:
    result = asyncio.run(_workload(Path(data_dir)))
    Path(data_dir, "result.json").write_text(json.dumps(result))


# -- the test ------------------------------------------------------------------------------

def _masked_id(value: str) -> str:
    return value[:3] + "*" * 11 + value[-4:]


def _json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON log objects. A line written by one thread can land inside another's (seen under
    the full suite's load: the probe's own line was lost that way once), so every complete object
    that starts anywhere in a line is taken, not only whole lines; the secrets are searched in the
    raw text anyway."""
    decoder = json.JSONDecoder()
    out = []
    for line in lines:
        start = line.find("{")
        while start != -1:
            try:
                obj, end = decoder.raw_decode(line, start)
            except ValueError:
                start = line.find("{", start + 1)
                continue
            if isinstance(obj, dict) and "event" in obj:
                out.append(obj)
            start = line.find("{", end)
    return out


def _rows_with(db: Path, needles: list[str]) -> dict[str, list[str]]:
    """Per table of a SQLite file: which needles occur in any column of any row (raw values)."""
    found: dict[str, list[str]] = {}
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            text = repr(conn.execute(f'SELECT * FROM "{table}"').fetchall())
            hits = [n for n in needles if n in text or n.lower() in text]
            if hits:
                found[table] = hits
    return found


def test_a_full_workload_logs_and_stores_no_full_id_or_account_number(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EVENT_BUS", "LOG_LEVEL", "LOG_JSON")}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.security.test_no_pii_in_logs import child_main; "
                               "child_main(sys.argv[1])", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, timeout=300)
    logs = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, "the workload failed:\n" + logs[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())

    # the workload did what it says
    assert all(v < 500 for v in result["statuses"].values()), result["statuses"]
    assert result["first_dispatch"] == [1, 1] and result["second_dispatch"] == [1, 0]
    assert sorted(result["bank_accounts"]) == sorted(ACCOUNTS)  # the bank gets the real numbers
    ids = result["ids"]
    assert len(ids) >= 7 and PROBE_ID not in ids

    # the capture is real: both kinds of line are there, the probes masked
    lines = [line for line in logs.splitlines() if line.strip()]
    assert len(lines) > 100
    events = _json_lines(lines)
    assert {"service_started", "pii_probe"} <= {e.get("event") for e in events}
    assert any(e.get("logger") == "httpx" for e in events)  # the standard library's loggers
    assert any(e.get("logger") == "pii.probe" and _masked_id(PROBE_ID) in e["event"] for e in events)
    probe = next(e for e in events if e.get("event") == "pii_probe")
    assert probe["person_id"] == _masked_id(PROBE_ID) and probe["account"].endswith(PROBE_ACCOUNT[-4:])
    assert any(_masked_id(i) in logs for i in ids)  # URLs and messages carried them: masked

    # no full identity number, no full account number, in any line
    for secret in [PROBE_ID, PROBE_ACCOUNT, *ids, *ACCOUNTS]:
        assert secret not in logs and secret.lower() not in logs, _masked_id(secret)

    # at rest: no account number anywhere in payments' files (database, WAL, journal)
    payments_files = list(tmp_path.glob("payments.db*"))
    assert payments_files
    for f in payments_files:
        data = f.read_bytes()
        for number in ACCOUNTS:
            assert number.encode() not in data, (f.name, number[-4:])
    # intake: identity numbers only on the events it publishes and receives (internal), never in
    # the applications, their timeline, transfers or any other table of its own
    intake_db = tmp_path / "intake.db"
    with sqlite3.connect(intake_db) as conn:  # the applications table, raw
        raw = repr(conn.execute("SELECT * FROM applications").fetchall())
        assert conn.execute("SELECT count(*) FROM applications").fetchone()[0] >= 5
    for number in ids:
        assert number not in raw and number[6:14] not in raw  # not even the birth date
    leaks = _rows_with(intake_db, ids)
    assert set(leaks) <= MESSAGING_TABLES, sorted(leaks)
    assert _rows_with(tmp_path / "payments.db", list(ACCOUNTS)) == {}
    # the other services: no identity number in any table but the events (person keys instead)
    for service in ("eligibility", "payments", "monitoring"):
        db = tmp_path / f"{service}.db"
        leaks = _rows_with(db, ids)
        assert set(leaks) <= MESSAGING_TABLES, (service, sorted(leaks))
        with sqlite3.connect(db) as conn:  # the workload did reach the service's person tables
            assert conn.execute("SELECT count(*) FROM person_vault").fetchone()[0] >= 2, service
