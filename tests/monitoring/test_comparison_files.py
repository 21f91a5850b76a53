"""M2 monthly comparison files (CSV / JSONL), streamed: each bad row is reported with its row
number, field and message and never stops the others; the good rows are compared with the register."""
from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from shared.events.monitoring import PersonDied
from shared.messaging.tables import outbox
from tests.support import auth

from services.monitoring.domain.signing import sign
from services.monitoring.models import comparison_files, partner_records, warnings
from tests.monitoring.helpers import OTHER_VILLAGE, PARTNER_KEYS, decision, harness, person

EXCHANGE = {"partner_types": {"provincial_data_exchange": ["death", "medical_expense", "unemployment",
                                                           "disability_certified", "school_enrollment",
                                                           "poverty_monitoring"]}}


async def _scalar(h, q):
    async with h.app.state.runtime.session_factory() as s:
        return await s.scalar(q)


async def test_csv_file_with_malformed_rows_reports_them_and_processes_the_rest(database_url):
    """M2/M6/M3/M4: deaths, medical expenses and poverty-monitoring rows in one monthly CSV; 5 bad rows."""
    a, b, c = person(40), person(41), person(42)
    bad_id = a[:-1] + ("1" if a[-1] != "1" else "2")
    rows = [
        "type,person_id,occurred_on,amount,category,region_code,labor_capacity,reference",
        f"death,{a},2026-09-20,,,,,\"D-1, funeral\"",                                       # row 2
        f"medical_expense,{b},2026-09-21,30000.00,,,,M-1",                                  # 3
        f"medical_expense,{bad_id},2026-09-21,30000.00,,,,M-2",                             # 4 bad id
        f"medical_expense,{b},2026-13-01,30000.00,,,,M-3",                                  # 5 bad date
        f"medical_expense,{b},2026-09-22,,,,,M-4",                                          # 6 amount missing
        f"flood,{b},2026-09-22,,,,,M-5",                                                    # 7 unknown type
        f"death,{b}",                                                                       # 8 too few fields
        f"poverty_monitoring,{c},2026-09-23,,at_risk_of_poverty,{OTHER_VILLAGE},none,\"multi\nline\"",  # 9
        "",
    ]
    raw = "\r\n".join(rows).encode()
    async with harness(database_url, **EXCHANGE) as h:
        await h.publish(decision([a, b]), subject=a)
        r = await h.client.post("/v1/comparison-files", content=raw,
                                params={"format": "csv", "kind": "mixed", "partner_id": "provincial_data_exchange",
                                        "filename": "2026-09.csv"},
                                headers=auth("monitoring_operator") | {"Content-Type": "text/csv"})
        assert r.status_code == 201, r.text
        f = r.json()
        assert (f["status"], f["rows_total"], f["rows_ok"], f["rows_failed"]) == ("completed", 8, 3, 5)
        assert (f["warnings_raised"], f["deaths_detected"], f["register_entries"]) == (3, 1, 1)
        errs = (await h.client.get(f["errors_url"], headers=auth("monitoring_operator"))).json()["errors"]
        assert [(e["row"], e["field"]) for e in errs] == [(4, "person_id"), (5, "occurred_on"), (6, "amount"),
                                                          (7, "type"), (8, "row")]
        assert "check digit" in errs[0]["message"]
        got = (await h.client.get(f"/v1/comparison-files/{f['id']}", headers=auth("county_civil_affairs"))).json()
        assert got["rows_failed"] == 5
        assert await _scalar(h, sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.type == PersonDied.TYPE)) == 1
        kinds = (await h.client.get("/v1/warnings", params={"region_code": "522701000000"},
                                    headers=auth("monitoring_operator"))).json()["items"]
        assert sorted((w["rule"], w["kind"]) for w in kinds) == [("M3", "illness"), ("M4", "coverage_gap"),
                                                                   ("M6", "death")]
        # the same file again: every row stored again, no new warning, no second PersonDied
        again = (await h.client.post("/v1/comparison-files", content=raw,
                                     params={"format": "csv", "kind": "mixed", "partner_id": "provincial_data_exchange"},
                                     headers=auth("monitoring_operator"))).json()
        assert again["warnings_raised"] == 0 and again["rows_ok"] == 3
        assert await _scalar(h, sa.select(sa.func.count()).select_from(warnings)) == 3


async def test_signed_partner_upload_jsonl_multipart(sqlite_url):
    """M2: a partner system uploads its own monthly JSONL as multipart; the signature covers the file."""
    a, b = person(50), person(51)
    lines = [json.dumps({"type": "medical_expense", "person_id": a, "occurred_on": "2026-09-10",
                         "data": {"amount": "90000.00", "hospital": "州医院"}}, ensure_ascii=False),
             json.dumps({"type": "medical_expense", "person_id": b, "occurred_on": "2026-09-10",
                         "data": {"amount": "oops"}}),
             "{broken json",
             json.dumps({"type": "death", "person_id": a, "occurred_on": "2026-09-10"})]
    content = ("\n".join(lines) + "\n").encode()
    boundary = "----jiuzhu" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nSeptember\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"medical-2026-09.jsonl\"\r\n"
            f"Content-Type: application/x-ndjson\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()

    def headers(nonce: str, ts: int, key: str = PARTNER_KEYS["medical_insurance"]) -> dict[str, str]:
        return auth("partner_system", sub="medical_insurance") | {
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Partner-Id": "medical_insurance",
            "X-Timestamp": str(ts), "X-Nonce": nonce, "X-Signature": sign(key, str(ts), nonce, content)}

    async with harness(sqlite_url) as h:
        await h.publish(decision([a, b]), subject=a)
        ts = int(h.clock().timestamp())
        r = await h.client.post("/v1/comparison-files", params={"kind": "medical_expense"}, content=body,
                                headers=headers("upload-0001", ts, key="wrong-key"))
        assert r.status_code == 401
        assert await _scalar(h, sa.select(sa.func.count()).select_from(partner_records)) == 0
        assert await _scalar(h, sa.select(sa.func.count()).select_from(comparison_files)) == 0
        r = await h.client.post("/v1/comparison-files", params={"kind": "medical_expense"}, content=body,
                                headers=headers("upload-0002", ts))
        assert r.status_code == 201, r.text
        f = r.json()
        assert (f["format"], f["filename"], f["rows_ok"], f["rows_failed"]) == ("jsonl", "medical-2026-09.jsonl", 1, 3)
        errs = (await h.client.get(f["errors_url"], headers=auth("partner_system", sub="medical_insurance"))).json()
        assert [(e["row"], e["field"]) for e in errs["errors"]] == [(2, "data.amount"), (3, "row"), (4, "type")]
        [w] = (await h.client.get("/v1/warnings", headers=auth("monitoring_operator"))).json()["items"]
        assert (w["rule"], w["level"]) == ("M3", 1)  # ≥ 3 × the threshold
        replay = await h.client.post("/v1/comparison-files", params={"kind": "medical_expense"}, content=body,
                                     headers=headers("upload-0002", ts))
        assert replay.status_code == 401
        other = await h.client.post("/v1/comparison-files", params={"kind": "death"}, content=body,
                                    headers=headers("upload-0003", ts))
        assert other.status_code == 403


async def test_bad_file_header_or_parameters_is_422_and_stores_nothing(sqlite_url):
    async with harness(sqlite_url, **EXCHANGE) as h:
        op = auth("monitoring_operator")
        r = await h.client.post("/v1/comparison-files", content=b"person_id,occured_on,colour\n1,2,3\n",
                                params={"format": "csv", "kind": "death", "partner_id": "civil_registration"}, headers=op)
        assert r.status_code == 422
        fields = {e["field"] for e in r.json()["errors"]}
        assert fields == {"columns.occured_on", "columns.colour", "columns.occurred_on"}
        r = await h.client.post("/v1/comparison-files", content=b"x", params={"kind": "weather", "format": "csv",
                                                                             "partner_id": "civil_registration"},
                                headers=op)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
        r = await h.client.post("/v1/comparison-files", content=b"x", params={"kind": "death"}, headers=op)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "format"
        r = await h.client.post("/v1/comparison-files", content=b"", params={"kind": "death", "format": "csv",
                                                                            "partner_id": "civil_registration"},
                                headers=op)
        assert r.status_code == 422
        assert await _scalar(h, sa.select(sa.func.count()).select_from(comparison_files)) == 0


async def test_files_stream_past_the_kernel_body_limit_up_to_their_own(sqlite_url):
    """A monthly file is far larger than the 1 MiB request limit of other endpoints: it is streamed
    (COMPARISON_MAX_FILE_BYTES caps it, 413 beyond, nothing kept)."""
    from datetime import date, timedelta

    from tests.support import make_id
    lines = ["type,person_id,occurred_on,reference"]
    for i in range(30_000):
        lines.append(f"death,{make_id(date(1940, 1, 1) + timedelta(days=i % 20000), i // 20000, '522702')},"
                     f"2026-09-01,R{i:08d}-{'x' * 20}")
    raw = ("\n".join(lines) + "\n").encode()
    assert len(raw) > 1_500_000
    params = {"format": "csv", "kind": "death", "partner_id": "civil_registration"}
    async with harness(sqlite_url) as h:
        r = await h.client.post("/v1/comparison-files", content=raw, params=params, headers=auth("monitoring_operator"))
        assert r.status_code == 201, r.text
        assert (r.json()["rows_ok"], r.json()["warnings_raised"]) == (30_000, 0)  # nobody in this register
    async with harness(sqlite_url, comparison_max_file_bytes=1_000_000) as h:
        r = await h.client.post("/v1/comparison-files", content=raw, params=params, headers=auth("monitoring_operator"))
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
        assert await _scalar(h, sa.select(sa.func.count()).select_from(comparison_files)) == 1  # the first one only
