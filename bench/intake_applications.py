"""Benchmark: `POST /v1/applications` against PostgreSQL, 100 concurrent clients, intake vs the
floor (bench/reference_insert_app.py: one asyncpg INSERT) measured the same way in the same run.

Usage: .venv/bin/python bench/intake_applications.py [--duration 15] [--warmup 3] [--connections 100]
                                                     [--rounds 1] [--pg postgresql://postgres@127.0.0.1:5432/test]

Each app is served by uvicorn (1 worker, uvloop, httptools) against its own fresh PostgreSQL
database; intake runs with EVENT_BUS=inprocess (outbox written and relayed). Load: wrk -t2
with a Lua script generating a distinct valid application per request (a new person with a
correct GB 11643 check digit, a new Idempotency-Key) — or, without wrk, an asyncio/httpx load
generator in a separate process. Prints throughput and p50/p99 of both, the ratio, and checks
intake's targets: ≥ 50 % of the reference's throughput and p99 < 100 ms (PERFORMANCE.md).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.auth import mint_token  # noqa: E402
from shared.settings import DEV_JWT_SECRET  # noqa: E402

PYTHON = sys.executable
SECRET = os.environ.get("AUTH_JWT_SECRET", DEV_JWT_SECRET)
COUNTY, TOWNSHIP = "522701000000", "522701001000"

LUA = r"""
local W = {7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2}
local C = {"1","0","X","9","8","7","6","5","4","3","2"}
local threads_made = 0
local counter, base = 0, 0
tid = 0  -- a global: setup() gives each thread its own with thread:set

function setup(thread)
  thread:set("tid", threads_made)
  threads_made = threads_made + 1
end

function init(args)
  base = tonumber(args[1] or "0")
  counter = 0
end

-- days since 1970-01-01 → civil date (Howard Hinnant's algorithm; no os.time before 1970)
local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function check(s)
  local sum = 0
  for i = 1, 17 do sum = sum + tonumber(s:sub(i, i)) * W[i] end
  return C[(sum % 11) + 1]
end

request = function()
  counter = counter + 1
  local n = base + tid * 5000000 + counter
  local y, m, d = civil(-14610 + math.floor(n / 1000))   -- from 1930-01-01
  local id17 = string.format("522701%04d%02d%02d%03d", y, m, d, n % 1000)
  local body = string.format('{"channel":"window","program":"dibao","region_code":"522701001000","area":"urban",'
    .. '"household":{"members":[{"person_id":"%s","relation":"applicant","birth_date":"%04d-%02d-%02d",'
    .. '"monthly_income":"100.00","labor_capacity":"none"}]},'
    .. '"documents":["id_card","household_register","economic_check_authorization","income_statement"]}',
    id17 .. check(id17), y, m, d)
  wrk.headers["Idempotency-Key"] = "bench-" .. base .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", "/v1/applications", nil, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on :{port} exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on :{port} did not become ready")


async def _admin(dsn: str, sql: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetch(dsn: str, sql: str) -> list[tuple]:
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def serve(target: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [PYTHON, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    return float(m.group(1)) * _UNIT[m.group(2)]


def run_wrk(port: int, token: str, seconds: float, connections: int, base: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "--timeout", "10s", "-s", str(script),
         "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
         f"http://127.0.0.1:{port}/v1/applications", "--", str(base)],
        capture_output=True, text=True, check=True).stdout
    if "Latency Distribution" not in out:
        raise SystemExit(f"wrk output not understood:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    dist = out.split("Latency Distribution", 1)[1]
    p50 = _ms(re.search(r"50%\s+(\S+)", dist).group(1))
    p99 = _ms(re.search(r"99%\s+(\S+)", dist).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "requests": total, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else ""}


# -- fallback load generator (no wrk): a separate process, asyncio + httpx -----------------------

def _loadgen_main(port: int, token: str, seconds: float, connections: int, base: int) -> None:
    import httpx
    from stdnum.cn import ric
    from datetime import date, timedelta

    async def main() -> None:
        lat: list[float] = []
        bad = 0
        counter = 0
        stop_at = time.perf_counter() + seconds
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            async def worker() -> None:
                nonlocal counter, bad
                while time.perf_counter() < stop_at:
                    counter += 1
                    n = base + counter
                    born = date(1930, 1, 1) + timedelta(days=n // 1000)
                    body17 = f"522701{born:%Y%m%d}{n % 1000:03d}"
                    body = {"channel": "window", "program": "dibao", "region_code": TOWNSHIP, "area": "urban",
                            "household": {"members": [{"person_id": body17 + ric.calc_check_digit(body17 + "0"),
                                                       "relation": "applicant", "birth_date": born.isoformat(),
                                                       "monthly_income": "100.00", "labor_capacity": "none"}]},
                            "documents": ["id_card", "household_register", "economic_check_authorization",
                                          "income_statement"]}
                    t0 = time.perf_counter()
                    r = await client.post("/v1/applications", json=body, headers={"Idempotency-Key": f"lg-{n}"})
                    lat.append((time.perf_counter() - t0) * 1000)
                    bad += r.status_code >= 300
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - t0
        lat.sort()
        print(json.dumps({"rps": len(lat) / elapsed, "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
                          "requests": len(lat), "non_2xx": bad, "socket_errors": ""}))

    asyncio.run(main())


def run_loadgen(port: int, token: str, seconds: float, connections: int, base: int) -> dict[str, float]:
    out = subprocess.run([PYTHON, __file__, "--loadgen", str(port), token, str(seconds), str(connections), str(base)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        _loadgen_main(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1, help="alternate reference/intake this many times")
    ap.add_argument("--pg", default=os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--no-wrk", action="store_true", help="use the Python load generator even if wrk exists")
    args = ap.parse_args()

    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    tag = uuid.uuid4().hex[:8]
    dbs = {"reference": f"bench_ref_{tag}", "intake": f"bench_intake_{tag}"}
    server_dsn = args.pg.rsplit("/", 1)[0]
    for name in dbs.values():
        asyncio.run(_admin(args.pg, f'CREATE DATABASE "{name}"'))
    tmp = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    script = tmp / "applications.lua"
    script.write_text(LUA)
    ports = {"reference": free_port(), "intake": free_port()}
    token = mint_token(secret=SECRET, sub="bench-clerk", role="township_clerk", region=COUNTY, name="bench")
    procs = {
        "reference": serve(["--app-dir", "bench", "reference_insert_app:app"], ports["reference"],
                           {"REFERENCE_DSN": f"{server_dsn}/{dbs['reference']}"}, tmp / "reference.log"),
        "intake": serve(["--factory", "services.intake.app:create_app"], ports["intake"],
                        {"DATABASE_URL": f"{server_dsn.replace('postgresql://', 'postgresql+asyncpg://')}/{dbs['intake']}",
                         "EVENT_BUS": "inprocess", "LOG_LEVEL": "WARNING", "AUTH_JWT_SECRET": SECRET,
                         # one client hammering on purpose: the per-client limit would turn it into 429s
                         "PUBLIC_RATE_LIMIT_PER_S": "1000000", "PUBLIC_RATE_LIMIT_BURST": "1000000",
                         "DEADLINE_SCAN_INTERVAL_S": "0"}, tmp / "intake.log"),
    }
    results: dict[str, list[dict[str, float]]] = {"reference": [], "intake": []}
    try:
        for name, proc in procs.items():
            wait_http(ports[name], "/healthz", proc)
        load = (lambda port, secs, base: run_wrk(port, token, secs, args.connections, base, script)) if use_wrk \
            else (lambda port, secs, base: run_loadgen(port, token, secs, args.connections, base))
        base = 0
        for name in ("reference", "intake"):  # warm-up (JIT-free Python still fills caches and pools)
            load(ports[name], args.warmup, base)
        for _ in range(args.rounds):
            for name in ("reference", "intake"):
                base += 1_000_000
                results[name].append(load(ports[name], args.duration, base))
        # Sanity: what intake answered 201 is stored once, with one event each, all relayed.
        intake_dsn = f"{server_dsn}/{dbs['intake']}"
        time.sleep(1.0)
        (apps,), = asyncio.run(_fetch(intake_dsn, "SELECT count(*) FROM applications"))
        (events, pending), = asyncio.run(_fetch(
            intake_dsn, "SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox "
                        "WHERE type = 'intake.application.submitted'"))
    finally:
        for proc in procs.values():
            stop(proc)
        for name in dbs.values():
            try:
                asyncio.run(_admin(args.pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception:
                pass

    def best(name: str) -> dict[str, float]:
        return max(results[name], key=lambda r: r["rps"])

    ref, intake = best("reference"), best("intake")
    ratio = intake["rps"] / ref["rps"]
    print(f"POST /v1/applications — {args.connections} connections, {args.duration:.0f} s per run, "
          f"{'wrk -t2' if use_wrk else 'python loadgen'}; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, PostgreSQL at {server_dsn.split('@')[-1]}")
    print(f"{'':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'non-2xx':>8}")
    for name in ("reference", "intake"):
        for i, r in enumerate(results[name]):
            print(f"{name + ('' if len(results[name]) == 1 else f'#{i + 1}'):<10} {r['rps']:>9.0f} {r['p50']:>8.1f} "
                  f"{r['p99']:>8.1f} {r['requests']:>9} {r['non_2xx']:>8}"
                  + (f"  socket errors: {r['socket_errors']}" if r["socket_errors"] else ""))
    pairs = [f"{i['rps'] / r['rps']:.0%}" for r, i in zip(results["reference"], results["intake"])]
    print(f"ratio intake/reference throughput: {ratio:.1%} best vs best (per round: {', '.join(pairs)}; "
          f"target ≥ 50%); intake p99 {intake['p99']:.1f} ms (target < 100 ms)")
    print(f"Little's law at {args.connections} closed-loop clients: mean latency ≈ {args.connections} / throughput "
          f"= {1000 * args.connections / intake['rps']:.0f} ms for intake, {1000 * args.connections / ref['rps']:.0f} ms "
          f"for the reference")
    print(f"intake stored {apps} applications, {events} submitted events ({pending} not yet relayed)")
    ok = ratio >= 0.5 and intake["p99"] < 100 and intake["non_2xx"] == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
