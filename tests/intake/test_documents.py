"""一次性告知 (I3): every missing document is named at once, per program and region; supplying
them moves the application on (accepted, dispatched, intake.application.submitted)."""
from __future__ import annotations

from services.intake.domain.checklist import load_checklist
from shared.events.intake import ApplicationSubmitted
from tests.intake.conftest import events, intake, steps
from tests.support import DIBAO_DOCS, OTHER_COUNTY, application_body, auth

CLERK = auth("township_clerk")


def test_checklist_is_data_per_program_and_region() -> None:
    checklist = load_checklist()
    assert checklist.required("dibao", "522701001000") == DIBAO_DOCS
    # A county's own list wins over the national default (here: 异地申请 residence certificate, D6).
    assert checklist.required("dibao", "522702003004")[-1] == "residence_certificate"
    assert checklist.required("linshi", "522702003004") == ["id_card", "hardship_statement"]
    assert checklist.missing("tekun", "522701001000", ["id_card"]) == ["household_register",
                                                                       "economic_check_authorization"]


async def test_all_missing_documents_at_once_then_supplied(database_url: str) -> None:
    async with intake(database_url) as (app, client):
        r = await client.post("/v1/applications", json=application_body(documents=["id_card"]), headers=CLERK)
        assert r.status_code == 201
        out = r.json()
        assert out["status"] == "received"
        assert [d["code"] for d in out["missing_documents"]] == DIBAO_DOCS[1:]
        assert all(d["name"] for d in out["missing_documents"])  # named for people, not codes
        assert steps(out) == ["received", "documents_requested"]
        assert "户口簿" in out["timeline"][1]["detail"] and "家庭收入情况声明" in out["timeline"][1]["detail"]
        assert await events(app, ApplicationSubmitted.TYPE) == []  # not dispatched until complete

        aid = out["application_id"]
        r = await client.post(f"/v1/applications/{aid}/documents", json={"documents": ["household_register"]},
                              headers=CLERK)
        assert r.status_code == 200 and r.json()["status"] == "received"
        assert [d["code"] for d in r.json()["missing_documents"]] == DIBAO_DOCS[2:]

        r = await client.post(f"/v1/applications/{aid}/documents", json={"documents": ["nonsense"]}, headers=CLERK)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "documents.0"

        r = await client.post(f"/v1/applications/{aid}/documents", json={"documents": DIBAO_DOCS[2:]}, headers=CLERK)
        out = r.json()
        assert out["status"] == "accepted" and out["missing_documents"] == []
        assert steps(out)[-3:] == ["documents_supplied", "accepted", "dispatched"]
        submitted = await events(app, ApplicationSubmitted.TYPE)
        assert [e["data"]["application_id"] for e in submitted] == [aid]
        assert submitted[0]["data"]["documents_complete"] is True

        r = await client.post(f"/v1/applications/{aid}/documents", json={"documents": ["id_card"]}, headers=CLERK)
        assert r.status_code == 409

        # Another county's checklist: its own extra document is asked for too.
        r = await client.post("/v1/applications", json=application_body(seq=2, region="522702001000"),
                              headers=auth("township_clerk", region=OTHER_COUNTY))
        assert [d["code"] for d in r.json()["missing_documents"]] == ["residence_certificate"]
