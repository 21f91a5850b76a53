"""Issue 8: monitoring keeps person keys, never identity numbers (shared/pii.py): the register,
its history, partner records, warnings and visits name people by key (the comparison joins
on it), the numbers sit AES-GCM encrypted in ``person_vault`` and come back only in staff
views and on events; migration 0005pii converts rows stored with numbers and back."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.monitoring.app import SERVICE_DIR
from services.monitoring.models import metadata, partner_records, register, register_history, tekun_visits, warnings
from shared.crypto import cipher_for
from shared.settings import DEV_DATA_KEY
from tests.monitoring.helpers import COUNTY, OTHER_VILLAGE, VILLAGE, decision, harness, person
from tests.support import MESSAGING_TABLES, auth, dump_tables, eventually, migrate, on_db, table_rows

OTHER_KEY = "another-data-encryption-key-0123456789-abcdef"




async def test_rows_hold_keys_views_and_events_the_numbers(database_url: str) -> None:
    covered, dying, poor = person(80), person(81), person(82)
    key = cipher_for(DEV_DATA_KEY).index
    async with harness(database_url) as h:
        await h.publish(decision([covered, dying]), subject=covered)
        full = auth("county_civil_affairs")

        async def in_register() -> bool:
            r = await h.client.get("/v1/register", params={"region_code": COUNTY}, headers=full)
            return r.json()["total"] == 2
        await eventually(in_register)
        r = await h.partner_post("civil_registration", {"type": "death", "person_id": dying,
                                                        "occurred_on": "2026-09-27", "reference": "d-1"})
        assert r.status_code == 201 and r.json()["death_detected"] is True, r.text
        r = await h.partner_post("rural_revitalization", {
            "type": "poverty_monitoring", "person_id": poor, "occurred_on": "2026-09-25",
            "data": {"region_code": OTHER_VILLAGE, "category": "unstable_post_poverty", "labor_capacity": "none"}})
        assert [w["rule"] for w in r.json()["warnings"]] == ["M4"], r.text

        stored = await dump_tables(h.app, metadata, skip=MESSAGING_TABLES)
        for pid in (covered, dying, poor):
            assert pid not in stored
        async with h.app.state.runtime.session_factory() as s:
            people = set((await s.execute(sa.select(register.c.person_id))).scalars())
            warned = set((await s.execute(sa.select(warnings.c.person_id))).scalars())
            reported = set((await s.execute(sa.select(partner_records.c.person_id))).scalars())
        assert people == {key(covered), key(poor)}  # the dead left the register; the poor entered it
        assert warned == {key(dying), key(poor)} and reported == {key(dying), key(poor)}

        # by number: the register (full for the county, masked for operators), a history, the warnings
        reg = (await h.client.get("/v1/register", params={"region_code": COUNTY}, headers=full)).json()
        assert sorted(i["person_id"] for i in reg["items"]) == sorted([covered, poor])
        masked = (await h.client.get("/v1/register", params={"region_code": COUNTY},
                                     headers=auth("monitoring_operator"))).json()
        assert covered not in repr(masked) and all("*" in i["person_id"] for i in masked["items"])
        hist = (await h.client.get(f"/v1/register/{dying}/history", headers=full)).json()
        assert hist["person_id"] == dying and [x["action"] for x in hist["history"]] == ["enter", "leave"]
        listed = (await h.client.get("/v1/warnings", params={"region_code": COUNTY}, headers=full)).json()
        assert sorted(w["person_id"] for w in listed["items"]) == sorted([dying, poor])

        # the events carry the numbers (payments stops the benefit of the dead by number)
        async def died() -> Any:
            return h.events("monitoring.person.died") or None
        events = await eventually(died)
        assert [e.data["person_id"] for e in events] == [dying] and events[0].subject == dying


# -- migration 0005pii -------------------------------------------------------------------------







@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0005pii_converts_numbers_to_keys_and_the_downgrade_restores_them(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    url = (f"sqlite+aiosqlite:///{tmp_path}/m.db" if backend == "sqlite"
           else request.getfixturevalue("pg_databases").new("monpii"))
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", OTHER_KEY)  # the migration uses the service's key
    cipher = cipher_for(OTHER_KEY)
    a, b = person(90), person(91)
    now = datetime(2026, 9, 29, 2, tzinfo=timezone.utc)
    day = date(2026, 9, 29)
    migrate(SERVICE_DIR, url, "0004")

    async def seed(conn: Any) -> None:
        await conn.execute(register.insert(), [
            {"person_id": a, "category": "dibao", "region_code": VILLAGE, "since": day, "source_type": "t",
             "updated_at": now},
            {"person_id": b, "category": "tekun", "region_code": VILLAGE, "since": day, "source_type": "t",
             "updated_at": now}])
        await conn.execute(register_history.insert().values(
            person_id=a, category="dibao", region_code=VILLAGE, action="enter", valid_from=day, source_type="t",
            recorded_at=now))
        await conn.execute(partner_records.insert().values(
            channel="api", partner_id="civil_registration", type="death", person_id=b, occurred_on=day,
            data={}, received_at=now))
        await conn.execute(warnings.insert().values(
            dedupe_key=f"death:{b}", rule="M6", kind="death", label="死亡", level=1, person_id=b,
            region_code=VILLAGE, covered=True, source_type="partner:death", batch="x", raised_at=now, raised_on=day,
            due_on=day, status="open"))
        await conn.execute(tekun_visits.insert().values(
            person_id=b, region_code=VILLAGE, visited_on=day, method="visit", visited_by="u", visited_by_name="u",
            visited_by_role="township_clerk", recorded_at=now))
    on_db(url, seed)

    migrate(SERVICE_DIR, url, "head")
    for table in (register, register_history, partner_records, warnings, tekun_visits):
        assert a not in repr(table_rows(url, table)) and b not in repr(table_rows(url, table)), table.name
    assert sorted(r["person_id"] for r in table_rows(url, register)) == sorted([cipher.index(a), cipher.index(b)])
    assert [r["dedupe_key"] for r in table_rows(url, warnings)] == [f"death:{cipher.index(b)}"]
    assert [r["person_id"] for r in table_rows(url, tekun_visits)] == [cipher.index(b)]
    vault = {r["person_key"]: r["person_enc"] for r in table_rows(url, metadata.tables["person_vault"])}
    assert {k: cipher.decrypt(v, context=f"person:{k}") for k, v in vault.items()} == {
        cipher.index(a): a, cipher.index(b): b}

    migrate(SERVICE_DIR, url, "0004", down=True)
    assert sorted(r["person_id"] for r in table_rows(url, register)) == sorted([a, b])
    assert [r["dedupe_key"] for r in table_rows(url, warnings)] == [f"death:{b}"]
    assert [r["person_id"] for r in table_rows(url, partner_records)] == [b]
