"""Schema fuzzing of all four OpenAPI documents against the running system, with valid tokens:
no 5xx, every response matches its documented schema, and every 4xx is problem+json."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from shared.openapi import api_routes, route_roles
from tests.live import LiveSystem
from tests.support import token

PROVINCE = "520000000000"
SERVICES = ("intake", "eligibility", "payments", "monitoring")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    system = LiveSystem(tmp_path_factory.mktemp("fuzz"), public_rate_limit_per_s=10_000.0,
                        public_rate_limit_burst=10_000).start()
    yield system
    system.stop()


def _headers_for(system: LiveSystem, service: str, method: str, path: str) -> dict[str, str]:
    """A valid token for a role the operation admits (province-wide, so region checks pass)."""
    for m, p, route in api_routes(system.apps[service]):
        if m == method and p == path:
            roles = route_roles(route)
            if roles:
                role = sorted(roles)[0]
                return {"Authorization": f"Bearer {token(role, PROVINCE, sub='applicant-demo' if role == 'applicant' else None)}"}
    return {"Authorization": f"Bearer {token('county_civil_affairs', PROVINCE)}"}


@schemathesis.check
def problem_json_for_4xx(ctx, response, case):
    if 400 <= response.status_code < 500:
        ctype = response.headers.get("content-type", [""])
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        assert ctype.startswith("application/problem+json"), f"{response.status_code} answered as {ctype}"
        body = response.json()
        for key in ("type", "title", "status", "detail"):
            assert key in body, f"problem+json without {key}"


FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                derandomize=True)


def _fuzz_service(live: LiveSystem, service: str) -> int:
    """Drives every operation of one service's OpenAPI document with hypothesis (schemathesis's
    pytest plugin does not run on pytest 9.2's nodes, so the loop is explicit)."""
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)
    schema = schemathesis.openapi.from_url(f"{live.url(service)}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, problem_json_for_4xx]
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        headers = _headers_for(live, service, operation.method.upper(), operation.path)

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(headers=headers, checks=checks)

        run()
    return operations


@pytest.mark.parametrize("service", SERVICES)
def test_fuzz(live: LiveSystem, service: str) -> None:
    assert _fuzz_service(live, service) > 3
