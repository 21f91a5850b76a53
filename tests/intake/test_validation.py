"""Bad input is refused with 422 problem+json naming each field, and nothing is stored
(API.md errors; I1 channel records; I3 documents from the checklist)."""
from __future__ import annotations

import copy
from datetime import date, datetime, timezone

import pytest

from services.intake.domain.validation import region_problem
from services.intake.models import application_steps, applications
from shared.messaging.tables import outbox
from tests.intake.conftest import count, intake
from tests.support import TOWNSHIP, application_body, auth, make_id


@pytest.mark.parametrize("code, ok", [
    ("522701001000", True), ("522701001002", True),   # township, village
    ("522701000000", False),                           # a county cannot be dispatched to
    ("52270100100", False), ("52270100100X", False),   # not 12 digits
    ("002701001000", False),                           # no province
    ("520000001000", False),                           # township under an empty city and county
    ("522700001000", False),                           # township under an empty county
])
def test_region_codes(code: str, ok: bool) -> None:
    assert (region_problem(code) is None) is ok


def test_region_code_levels() -> None:
    assert region_problem("522701000000", lowest_level="county") is None
    assert "county" in (region_problem("522700000000", lowest_level="county") or "")


def _member(body: dict, i: int = 0) -> dict:
    return body["household"]["members"][i]


def _bad_bodies() -> list[tuple[str, dict, set[str]]]:
    base = application_body(seq=7)
    cases: list[tuple[str, dict, set[str]]] = []

    def case(name: str, fields: set[str], change) -> None:  # type: ignore[no-untyped-def]
        b = copy.deepcopy(base)
        change(b)
        cases.append((name, b, fields))

    wrong_check = _member(base)["person_id"][:-1] + ("0" if _member(base)["person_id"][-1] != "0" else "1")
    case("ID check digit", {"household.members.0.person_id"}, lambda b: _member(b).update(person_id=wrong_check))
    case("birth date not the ID's", {"household.members.0.birth_date"},
         lambda b: _member(b).update(birth_date="1950-03-02"))
    case("region not 12 digits", {"region_code"}, lambda b: b.update(region_code="52270100100"))
    case("region level gap", {"region_code"}, lambda b: b.update(region_code="520000001000"))
    case("county cannot be dispatched", {"region_code"}, lambda b: b.update(region_code="522701000000"))
    case("no applicant", {"household.members"}, lambda b: _member(b).update(relation="spouse"))
    case("two applicants", {"household.members"}, lambda b: b["household"]["members"].append(
        {"person_id": make_id(date(1952, 5, 5), 8), "relation": "applicant", "birth_date": "1952-05-05"}))
    case("same person twice", {"household.members.1.person_id"}, lambda b: b["household"]["members"].append(
        {**_member(b), "relation": "spouse"}))
    case("12345 without work order", {"channel_ref"}, lambda b: b.update(channel="hotline_12345"))
    case("discovery without its record", {"discovery"}, lambda b: b.update(channel="active_discovery"))
    case("discovery on the window", {"discovery"}, lambda b: b.update(discovery={
        "found_by_name": "王五", "found_by_role": "grid_worker", "found_at": "2026-11-20T09:00:00+08:00",
        "place": "村口"}))
    case("discovery in the future", {"discovery.found_at"}, lambda b: b.update(channel="active_discovery", discovery={
        "found_by_name": "王五", "found_by_role": "grid_worker", "found_at": "2099-01-01T09:00:00+08:00",
        "place": "村口"}))
    case("linshi without hardship", {"hardship"}, lambda b: b.update(program="linshi"))
    case("expense without amount", {"hardship.expense_amount"},
         lambda b: b.update(program="linshi", hardship={"kind": "expense", "months": 1}))
    case("hardship place is a county", {"hardship.place_region_code"}, lambda b: b.update(
        program="linshi", hardship={"kind": "emergency", "months": 1, "place_region_code": "522701000000"}))
    case("unknown document", {"documents.1"}, lambda b: b.update(documents=["id_card", "passport_photo"]))
    case("unknown program", {"program"}, lambda b: b.update(program="pension"))
    case("unknown field", {"household.members.0.nickname"}, lambda b: _member(b).update(nickname="x"))
    case("money as float", {"household.members.0.monthly_income"}, lambda b: _member(b).update(monthly_income=1.5))
    case("several at once", {"region_code", "household.members.0.birth_date", "channel_ref"}, lambda b: b.update(
        region_code="520000001000", channel="hotline_12345",
        household={"members": [{**_member(base), "birth_date": "1950-03-02"}]}))
    return cases


BAD = _bad_bodies()


async def test_every_bad_input_names_its_fields_and_stores_nothing(database_url: str) -> None:
    """One app, every bad body: 422 problem+json with each bad field named; no row, no event."""
    async with intake(database_url) as (app, client):
        for name, body, fields in BAD:
            channel = body["channel"]
            role = {"hotline_12345": "hotline_operator", "active_discovery": "village_coordinator"}.get(
                channel, "township_clerk")
            r = await client.post("/v1/applications", json=body, headers=auth(role))
            assert r.status_code == 422, (name, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json"), name
            problem = r.json()
            assert problem["status"] == 422 and problem["title"]
            named = {e["field"] for e in problem["errors"]}
            assert fields <= named, (name, named)
        r = await client.post("/v1/applications", json=application_body(), headers={
            **auth("township_clerk"), "Idempotency-Key": "  "})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"
        for table in (applications, application_steps, outbox):
            assert await count(app, table) == 0, table.name


async def test_wrong_door_or_region_is_403_and_stores_nothing(database_url: str) -> None:
    """I1: each role files through its own door; staff only inside their region."""
    async with intake(database_url) as (app, client):
        r = await client.post("/v1/applications", json=application_body(channel="e_jiuzhu"),
                              headers=auth("township_clerk"))
        assert r.status_code == 403
        r = await client.post("/v1/applications", json=application_body(), headers=auth(
            "township_clerk", region="522702000000"))
        assert r.status_code == 403
        r = await client.post("/v1/applications", json=application_body())
        assert r.status_code == 401
        assert await count(app, applications) == 0


def test_birth_date_is_read_from_a_valid_number() -> None:
    from services.intake.domain.validation import _born
    assert _born(make_id(date(1988, 2, 29), 3)) == date(1988, 2, 29)
    assert datetime.now(timezone.utc).year >= 2026
    assert TOWNSHIP.endswith("000")
