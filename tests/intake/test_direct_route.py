"""POST /v1/applications is served by a direct route (api.submit_application_direct) ahead of
the documented FastAPI route. Both must answer every request the same: status, problem+json
body and field names, in the same order of checks (malformed JSON → 422 before the token;
401/403; then field errors)."""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.intake.api import submit_application_direct
from tests.intake.conftest import intake
from tests.support import application_body, auth

VALID = application_body(seq=41)
INVALID_FIELDS = {**application_body(seq=42), "region_code": "12", "area": "moon",
                  "household": {"members": [{"person_id": "110101199003070000", "birth_date": "1990-03-07"}]}}
JSON = {"Content-Type": "application/json"}

# (name, headers, raw body)
CASES: list[tuple[str, dict[str, str], bytes | None]] = [
    ("valid", {**auth("township_clerk"), **JSON, "Idempotency-Key": "d-1"}, orjson.dumps(VALID)),
    ("replay same key", {**auth("township_clerk"), **JSON, "Idempotency-Key": "d-1"}, orjson.dumps(VALID)),
    ("same key other body", {**auth("township_clerk"), **JSON, "Idempotency-Key": "d-1"},
     orjson.dumps(application_body(seq=43))),
    ("same person open, no key", {**auth("township_clerk"), **JSON}, orjson.dumps(VALID)),
    ("blank key", {**auth("township_clerk"), **JSON, "Idempotency-Key": " "}, orjson.dumps(application_body(seq=44))),
    ("invalid fields", {**auth("township_clerk"), **JSON}, orjson.dumps(INVALID_FIELDS)),
    ("not an object", {**auth("township_clerk"), **JSON}, b"[1, 2]"),
    ("missing required", {**auth("township_clerk"), **JSON}, b'{"channel": "window"}'),
    ("malformed json, no token", JSON, b'{"channel": '),
    ("malformed json, with token", {**auth("township_clerk"), **JSON}, b'{"channel": '),
    ("no token", JSON, orjson.dumps(application_body(seq=45))),
    ("bad token", {"Authorization": "Bearer nope", **JSON}, orjson.dumps(application_body(seq=45))),
    ("wrong scheme", {"Authorization": "Basic eDp5", **JSON}, orjson.dumps(application_body(seq=45))),
    ("role may not file", {**auth("county_finance"), **JSON}, orjson.dumps(application_body(seq=45))),
    ("channel not the role's", {**auth("applicant", sub="wx-1"), **JSON}, orjson.dumps(application_body(seq=46))),
    ("other region", {**auth("township_clerk", region="110101000000"), **JSON}, orjson.dumps(application_body(seq=47))),
    ("empty body", {**auth("township_clerk"), **JSON}, b""),
    ("no content type", {**auth("township_clerk")}, orjson.dumps(application_body(seq=48))),
    ("text content type", {**auth("township_clerk"), "Content-Type": "text/plain"},
     orjson.dumps(application_body(seq=48))),
    ("json suffix content type", {**auth("township_clerk"), "Content-Type": "application/merge-patch+json"},
     orjson.dumps(application_body(seq=49))),
]


def _comparable(status: int, content_type: str, body: bytes) -> tuple[int, str, Any]:
    data = orjson.loads(body) if body else None
    if isinstance(data, dict):
        data.pop("application_id", None)
        data.pop("instance", None)
        data = {k: v for k, v in data.items() if k not in ("received_at", "due_by", "timeline", "correlation_id")}
    return status, content_type.split(";")[0], data


async def _answers(database_url: str, direct: bool) -> list[tuple[int, str, Any]]:
    out = []
    async with intake(database_url, application_direct_route=direct) as (app, client):
        first = app.router.routes[0]
        assert (getattr(first, "endpoint", None) is submit_application_direct) is direct
        for _, headers, raw in CASES:
            r = await client.post("/v1/applications", content=raw, headers=headers)
            out.append(_comparable(r.status_code, r.headers.get("content-type", ""), r.content))
    return out


async def test_direct_route_answers_exactly_like_the_documented_route(tmp_path: Any) -> None:
    direct = await _answers(f"sqlite+aiosqlite:///{tmp_path}/direct.db", True)
    documented = await _answers(f"sqlite+aiosqlite:///{tmp_path}/documented.db", False)
    for (name, _, _), d, f in zip(CASES, direct, documented):
        assert d == f, f"{name}: direct {d} != documented {f}"
    statuses = dict(zip((c[0] for c in CASES), (d[0] for d in direct)))
    # and the answers are the expected ones (not merely equal)
    assert statuses["valid"] == statuses["replay same key"] == 201
    assert statuses["same key other body"] == 409 and statuses["same person open, no key"] == 200
    assert statuses["malformed json, no token"] == 422 and statuses["no token"] == 401
    assert statuses["role may not file"] == 403 and statuses["invalid fields"] == 422
    assert statuses["json suffix content type"] == 201
    fields = {e["field"] for e in direct[CASES.index(next(c for c in CASES if c[0] == "invalid fields"))][2]["errors"]}
    assert {"region_code", "area"} <= {f.split(".")[-1] for f in fields}


@pytest.mark.parametrize("direct", [True, False])
async def test_openapi_documents_the_operation_either_way(tmp_path: Any, direct: bool) -> None:
    async with intake(f"sqlite+aiosqlite:///{tmp_path}/o.db", application_direct_route=direct) as (_, client):
        doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/applications"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApplicationCreate")
    assert any(p["name"] == "Idempotency-Key" for p in op["parameters"])
