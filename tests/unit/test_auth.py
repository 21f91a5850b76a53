import base64
import hashlib
import hmac
import json
import time
from types import SimpleNamespace

import jwt
import pytest
from fastapi import Depends, FastAPI
from httpx import ASGITransport, AsyncClient

from shared import auth
from shared.auth import (
    ROLES,
    CurrentPrincipal,
    OptionalPrincipal,
    Principal,
    county_of,
    current_principal,
    decode_token,
    demo_tokens,
    ensure_region,
    is_region_code,
    mint_token,
    region_covers,
    region_level,
    region_prefix,
    require_roles,
    township_of,
)
from shared.errors import Forbidden, Unauthorized, install_problem_handlers
from shared.settings import DEV_JWT_SECRET

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
TOWNSHIP = "522701001000"
CLAIMS = {"sub": "u1", "role": "township_clerk", "region": TOWNSHIP, "name": "张三"}


def token(**overrides):
    kw = {**CLAIMS, **overrides}
    return mint_token(secret=SECRET, **kw)


def raw_token(claims, secret=SECRET, alg="HS256"):
    return jwt.encode(claims, secret, algorithm=alg)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_eleven_roles():
    assert len(ROLES) == 11 and len(set(ROLES)) == 11
    assert "applicant" in ROLES and "monitoring_operator" in ROLES


def test_round_trip():
    p = decode_token(token(), SECRET)
    assert p == Principal(sub="u1", role="township_clerk", region=TOWNSHIP, name="张三")
    claims = jwt.decode(token(), SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 8 * 3600
    assert jwt.get_unverified_header(token())["alg"] == "HS256"


def test_expired():
    old = token(now=time.time() - 10_000, ttl_seconds=60)
    with pytest.raises(Unauthorized) as exc:
        decode_token(old, SECRET)
    assert exc.value.detail == "token expired" and exc.value.status == 401


def test_wrong_signature():
    with pytest.raises(Unauthorized, match="signature"):
        decode_token(token(), SECRET + "x")


def test_tampered_payload_is_refused():
    header, _, sig = token().split(".")
    forged = b64({**CLAIMS, "role": "county_finance", "exp": int(time.time()) + 60})
    with pytest.raises(Unauthorized):
        decode_token(f"{header}.{forged}.{sig}", SECRET)


@pytest.mark.parametrize("signature", ["", "c2ln"])
def test_alg_none_is_refused(signature):
    header = b64({"alg": "none", "typ": "JWT"})
    payload = b64({**CLAIMS, "exp": int(time.time()) + 3600})
    with pytest.raises(Unauthorized):
        decode_token(f"{header}.{payload}.{signature}", SECRET)


def test_other_hmac_algorithm_is_refused():
    with pytest.raises(Unauthorized, match="HS256"):
        decode_token(raw_token({**CLAIMS, "exp": int(time.time()) + 60}, secret=SECRET * 2, alg="HS512"),
                     SECRET * 2)


def test_hand_signed_hs256_is_accepted():
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64({**CLAIMS, "exp": int(time.time()) + 60})
    sig = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    assert decode_token(f"{header}.{payload}.{signature}", SECRET).role == "township_clerk"


@pytest.mark.parametrize("missing", ["exp", "sub", "role", "region", "name"])
def test_missing_claim(missing):
    claims = {**CLAIMS, "exp": int(time.time()) + 60}
    del claims[missing]
    with pytest.raises(Unauthorized, match=missing):
        decode_token(raw_token(claims), SECRET)


@pytest.mark.parametrize("claims, message", [
    ({"role": "admin"}, "unknown role"),
    ({"region": "5227"}, "12-digit"),
    ({"region": "52270100100X"}, "12-digit"),
    ({"name": ""}, "name"),
    ({"sub": 7}, "ubject"),
])
def test_bad_claims(claims, message):
    with pytest.raises(Unauthorized, match=message):
        decode_token(raw_token({**CLAIMS, "exp": int(time.time()) + 60, **claims}), SECRET)


def test_garbage_token():
    with pytest.raises(Unauthorized):
        decode_token("not-a-token", SECRET)


def test_mint_refuses_bad_input():
    with pytest.raises(ValueError):
        token(role="admin")
    with pytest.raises(ValueError):
        token(region="52")


@pytest.mark.parametrize("code, level, prefix", [
    ("520000000000", "province", "52"),
    ("522700000000", "city", "5227"),
    ("522701000000", "county", "522701"),
    ("522701001000", "township", "522701001"),
    ("522701001001", "village", "522701001001"),
])
def test_region_levels(code, level, prefix):
    assert region_level(code) == level and region_prefix(code) == prefix


@pytest.mark.parametrize("scope, region, covered", [
    ("520000000000", "520000000000", True),
    ("520000000000", "522701001001", True),
    ("522700000000", "522701000000", True),
    ("522701000000", "522701001000", True),
    ("522701000000", "522702001000", False),
    ("522701001000", "522701001205", True),
    ("522701001000", "522701002000", False),
    ("522701001000", "522701000000", False),  # a township does not cover its county
    ("522701001001", "522701001001", True),
    ("522701001001", "522701001002", False),
    ("530000000000", "522701001000", False),
    ("5227", "522701001000", False),
    ("522701000000", "bad", False),
])
def test_region_covers(scope, region, covered):
    assert region_covers(scope, region) is covered


def test_region_helpers():
    assert is_region_code("522701001000")
    for bad in ("52270100100", "5227010010000", "000000000000", "52270100100a", "５２２７０１００１０００", 522701001000):
        assert not is_region_code(bad)
    assert township_of("522701001205") == "522701001000"
    assert township_of("522701001000") == "522701001000"
    assert county_of("522701001205") == "522701000000"
    with pytest.raises(ValueError):
        township_of("522701000000")
    with pytest.raises(ValueError):
        county_of("522700000000")
    with pytest.raises(ValueError):
        region_level("x")


def test_ensure_region():
    p = Principal("u1", "county_civil_affairs", "522701000000", "李四")
    ensure_region(p, "522701001000")
    with pytest.raises(Forbidden):
        ensure_region(p, "522702000000")


def test_require_roles_checks_names():
    with pytest.raises(ValueError):
        require_roles("admin")
    with pytest.raises(ValueError):
        require_roles()


# --- FastAPI dependencies through a small app ---------------------------------------

@pytest.fixture
async def client():
    app = FastAPI()
    app.state.settings = SimpleNamespace(auth_jwt_secret=SECRET)
    install_problem_handlers(app)

    @app.get("/me")
    async def me(principal: CurrentPrincipal):
        return {"sub": principal.sub, "role": principal.role}

    @app.get("/maybe")
    async def maybe(principal: OptionalPrincipal):
        return {"sub": principal.sub if principal else None}

    @app.get("/clerks")
    async def clerks(principal: Principal = Depends(require_roles("township_clerk", "township_office_director"))):
        return {"ok": True}

    @app.get("/regions/{code}")
    async def region(code: str, principal: Principal = Depends(current_principal)):
        ensure_region(principal, code)
        return {"ok": True}

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


async def test_missing_token_is_401_problem(client):
    r = await client.get("/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["status"] == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer not.a.token"])
async def test_bad_header_is_401(client, header):
    r = await client.get("/me", headers={"Authorization": header})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_expired_token_is_401(client):
    r = await client.get("/me", headers=bearer(token(now=time.time() - 10_000, ttl_seconds=60)))
    assert r.status_code == 401 and r.json()["detail"] == "token expired"


async def test_valid_token_is_200(client):
    r = await client.get("/me", headers=bearer(token()))
    assert r.status_code == 200 and r.json() == {"sub": "u1", "role": "township_clerk"}
    r = await client.get("/me", headers={"Authorization": f"bearer {token()}"})
    assert r.status_code == 200


async def test_optional_principal(client):
    assert (await client.get("/maybe")).json() == {"sub": None}
    assert (await client.get("/maybe", headers=bearer(token()))).json() == {"sub": "u1"}
    assert (await client.get("/maybe", headers=bearer("junk"))).status_code == 401


async def test_roles_403_and_200(client):
    assert (await client.get("/clerks", headers=bearer(token()))).status_code == 200
    r = await client.get("/clerks", headers=bearer(token(role="county_finance")))
    assert r.status_code == 403 and "county_finance" in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/clerks")).status_code == 401


async def test_region_403(client):
    assert (await client.get("/regions/522701001003", headers=bearer(token()))).status_code == 200
    assert (await client.get("/regions/522701002000", headers=bearer(token()))).status_code == 403


# --- CLI -------------------------------------------------------------------------------

def test_demo_tokens():
    tokens = demo_tokens(SECRET, "522701000000")
    assert set(tokens) == set(ROLES)
    for role, tok in tokens.items():
        p = decode_token(tok, SECRET)
        assert p.role == role and p.region == "522701000000"
    assert decode_token(tokens["applicant"], SECRET).sub == "applicant-demo"


def test_cli_mint_uses_env_secret(monkeypatch, capsys):
    monkeypatch.setenv("AUTH_JWT_SECRET", SECRET)
    assert auth.main(["mint", "--role", "township_clerk", "--region", TOWNSHIP, "--name", "张三"]) == 0
    p = decode_token(capsys.readouterr().out.strip(), SECRET)
    assert p == Principal("township_clerk-cli", "township_clerk", TOWNSHIP, "张三")


def test_cli_falls_back_to_dev_secret(monkeypatch, capsys):
    monkeypatch.delenv("AUTH_JWT_SECRET", raising=False)
    auth.main(["mint", "--role", "applicant", "--region", TOWNSHIP, "--sub", "u9", "--ttl", "60"])
    p = decode_token(capsys.readouterr().out.strip(), DEV_JWT_SECRET)
    assert p.sub == "u9"


def test_cli_demo_prints_a_token_per_role(monkeypatch, capsys):
    monkeypatch.setenv("AUTH_JWT_SECRET", SECRET)
    auth.main(["demo", "--region", "522701000000"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(ROLES)
    assert decode_token(lines[0].split()[1], SECRET).role == ROLES[0]


def test_cli_rejects_bad_region():
    with pytest.raises(SystemExit):
        auth.main(["mint", "--role", "applicant", "--region", "52"])
