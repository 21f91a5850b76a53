"""Issue 8: identity numbers encrypted at rest in ``applications`` (the applicant's number and
the whole household, AES-GCM bound to the application), the HMAC index for look-ups and the
open-application key; the same on the PostgreSQL hot path and the SQLAlchemy path; migration
0003 encrypts rows stored in plain text and its downgrade restores them."""
from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake.app import SERVICE_DIR
from services.intake.models import applications
from services.intake.personal_data import ApplicationVault
from shared.crypto import cipher_for
from shared.migrations import alembic_config
from shared.settings import DEV_DATA_KEY
from tests.intake.conftest import events, intake
from tests.support import application_body, auth, make_id

OTHER_KEY = "another-data-encryption-key-0123456789-abcdef"


async def test_no_identity_number_in_the_row_and_lookups_by_the_keyed_hash(database_url: str) -> None:
    body = application_body(seq=41)
    person = body["household"]["members"][0]["person_id"]
    spouse = make_id(date(1952, 6, 1), 42)
    body["household"]["members"].append({"person_id": spouse, "relation": "spouse", "birth_date": "1952-06-01"})
    async with intake(database_url) as (app, client):
        r = await client.post("/v1/applications", json=body, headers=auth("township_clerk"))
        assert r.status_code == 201 and r.json()["applicant_person_id"] == person
        aid = r.json()["application_id"]
        async with app.state.runtime.session_factory() as s:
            row = dict((await s.execute(sa.select(applications))).mappings().one())
        for number in (person, spouse):
            assert number not in repr(row) and number[6:14] not in repr(row)  # nor the birth date
        assert "applicant_person_id" not in row and "household" not in row
        index = cipher_for(DEV_DATA_KEY).index(person)
        assert row["applicant_person_index"] == index and row["open_key"] == f"{index}:dibao"
        vault = ApplicationVault(DEV_DATA_KEY)
        assert vault.person(aid, row["applicant_person_enc"]) == person
        assert [m["person_id"] for m in vault.household(aid, row["household_enc"])["members"]] == [person, spouse]

        # the same person and program again: found by the index, the open application answers
        again = await client.post("/v1/applications", json=application_body(seq=41), headers=auth("township_clerk"))
        assert again.status_code == 200 and again.json()["application_id"] == aid
        # read back: decrypted, then masked per role
        out = (await client.get(f"/v1/applications/{aid}", headers=auth("hotline_operator"))).json()
        assert out["applicant_person_id"] == person[:3] + "*" * 11 + person[-4:]
        assert [m["person_id"] for m in (await client.get(f"/v1/applications/{aid}", headers=auth("township_clerk"))
                                         ).json()["members"]] == [person, spouse]
        # events between services carry the plain numbers (internal)
        [submitted] = await events(app, "intake.application.submitted")
        assert submitted["data"]["applicant_person_id"] == person

    with pytest.raises(InvalidTag):
        ApplicationVault(OTHER_KEY).person(aid, row["applicant_person_enc"])
    with pytest.raises(InvalidTag):  # bound to its application: copied onto another row it is useless
        vault.person("another-application", row["applicant_person_enc"])
    with pytest.raises(InvalidTag):
        vault.household(aid, row["applicant_person_enc"])


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    cfg = alembic_config(SERVICE_DIR, url)
    (command.downgrade if down else command.upgrade)(cfg, revision)


def _run(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(sql), params)
                return [dict(r) for r in result.mappings()] if result.returns_rows else []
        finally:
            await engine.dispose()
    return asyncio.run(go())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0003_encrypts_existing_rows_and_the_downgrade_restores_them(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    url = (f"sqlite+aiosqlite:///{tmp_path}/m.db" if backend == "sqlite"
           else request.getfixturevalue("pg_databases").new("intmig"))
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", OTHER_KEY)  # the migration uses the service's key
    _migrate(url, "0002")
    person, spouse = make_id(date(1950, 3, 1), 51), make_id(date(1952, 6, 1), 52)
    household = {"members": [{"person_id": person, "relation": "applicant"}, {"person_id": spouse}]}
    for app_id, open_key in (("A-open", f"{person}:dibao"), ("A-closed", None)):
        _run(url, "INSERT INTO applications (id, channel, program, region_code, handling_region_code, area, "
                  "applicant_person_id, open_key, household, documents, missing_documents, status, owner_sub, "
                  "submitted_by_sub, submitted_by_role, received_at, due_by, updated_at) VALUES (:id, 'window', "
                  "'dibao', '522701001000', '522701001000', 'urban', :p, :k, :h, '[]', '[]', 'accepted', 'c', 'c', "
                  "'township_clerk', CURRENT_TIMESTAMP, CURRENT_DATE, CURRENT_TIMESTAMP)",
             id=app_id, p=person, k=open_key, h=orjson.dumps(household).decode())

    _migrate(url, "head")
    rows = {r["id"]: r for r in _run(url, "SELECT * FROM applications")}
    assert person not in repr(rows) and spouse not in repr(rows)
    vault = ApplicationVault(OTHER_KEY)
    index = vault.index(person)
    assert rows["A-open"]["open_key"] == f"{index}:dibao" and rows["A-closed"]["open_key"] is None
    for app_id, row in rows.items():
        assert row["applicant_person_index"] == index and vault.person(app_id, row["applicant_person_enc"]) == person
        assert vault.household(app_id, row["household_enc"]) == household

    _migrate(url, "0002", down=True)
    rows = {r["id"]: r for r in _run(url, "SELECT id, applicant_person_id, open_key, household FROM applications")}
    assert rows["A-open"]["applicant_person_id"] == person and rows["A-open"]["open_key"] == f"{person}:dibao"
    assert rows["A-closed"]["open_key"] is None
    stored = rows["A-open"]["household"]
    assert (orjson.loads(stored) if isinstance(stored, str) else stored) == household
    _migrate(url, "head")  # and up again


async def test_migrated_open_application_still_answers_a_repeat(tmp_path: Path) -> None:
    """An application open before 0003 keeps the person's one open slot after it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    body = application_body(seq=61)
    person = body["household"]["members"][0]["person_id"]
    await asyncio.to_thread(_migrate, url, "0002")
    await asyncio.to_thread(
        _run, url, "INSERT INTO applications (id, channel, program, region_code, handling_region_code, area, "
                   "applicant_person_id, open_key, household, documents, missing_documents, status, owner_sub, "
                   "submitted_by_sub, submitted_by_role, received_at, due_by, updated_at) VALUES ('A-old', 'window', "
                   "'dibao', '522701001000', '522701001000', 'urban', :p, :k, :h, '[]', '[]', 'accepted', "
                   "'township_clerk-test', 'township_clerk-test', 'township_clerk', CURRENT_TIMESTAMP, CURRENT_DATE, "
                   "CURRENT_TIMESTAMP)",
        p=person, k=f"{person}:dibao", h=orjson.dumps(body["household"]).decode())
    async with intake(url) as (_, client):  # migrates to head on start (the default key)
        r = await client.post("/v1/applications", json=body, headers=auth("township_clerk"))
        assert r.status_code == 200 and r.json()["application_id"] == "A-old"
        assert r.json()["applicant_person_id"] == person
